"""No secret ever comes back in an answer or goes into a log: database passwords, channel
secrets, Slack URLs and credentials in webhook URLs (token secrets: see test_auth.py)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.alerting import new_run, new_secret, send_steps, steps_of
from tests.support.polling import wait_until
from tests.support.receiver import Receiver
from tests.support.servers import ThreadedServer, free_port

DB_PASSWORD = "hunter2-db-password"


class TcpProxy:
    """Forwards a free loopback port to `target` until stopped, which cuts every connection."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        # shutdown() wakes the blocked accept(); close() alone would leave it accepting.
        for s in (self.listener, *self.sockets):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.listener.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # a fresh (emptied) PostgreSQL database
def test_database_password_stays_out_of_answers_logs_and_cli_errors(db_url, make_settings, caplog):
    from fadewatch.server.app import create_app, prepare_database

    caplog.set_level(logging.DEBUG, logger="fadewatch")
    caplog.set_level(logging.INFO, logger="uvicorn")
    real = make_url(db_url)
    proxy = TcpProxy((real.host, real.port or 5432))
    url = real.set(password=DB_PASSWORD, port=proxy.port).render_as_string(hide_password=False)
    settings = make_settings(database_url=url)
    server = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    answers = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            answers.append(api.get("/api/v1/runs"))
            assert answers[-1].status_code == 200
            proxy.stop()  # the database goes away under the running server
            answers.append(wait_until(lambda: (r := api.get("/api/v1/runs")).status_code == 503 and r,
                                      timeout=20, what="503 with the database away"))
            answers += [api.get("/readyz"), api.get("/metrics"), api.post("/api/v1/runs", json={"project": "p", "name": "r"})]
    finally:
        server.stop()
    assert answers[2].status_code == 503
    for r in answers:
        assert DB_PASSWORD not in r.text
    assert "database unavailable" in caplog.text and DB_PASSWORD not in caplog.text

    # The commands that open the database say what failed, with the password masked.
    away = real.set(password=DB_PASSWORD, port=free_port()).render_as_string(hide_password=False)
    for args in (["server", "--port", str(free_port()), "--db", away], ["token", "list", "--db", away]):
        done = subprocess.run([sys.executable, "-m", "fadewatch.cli", *args], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode != 0
        assert "cannot reach the database" in done.stderr and ":***@" in done.stderr, done.stderr[-500:]
        assert DB_PASSWORD not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_channel_secrets_stay_out_of_answers_and_logs(alert_api, alert_server, caplog):
    caplog.set_level(logging.DEBUG, logger="fadewatch")
    webhook_secret = new_secret()
    hidden = [webhook_secret, webhook_secret.removeprefix("whsec_"), "slack-url-secret", "query-token-secret",
              "userinfo-secret", "unusable-secret-marker"]
    answers = []
    with Receiver(default=400) as slack, Receiver(default=500) as hook:
        closed = free_port()
        channels = [
            {"name": "slack", "kind": "slack", "url": f"{slack.url}/services/T0/B0/slack-url-secret"},
            {"name": "hook", "kind": "webhook", "url": f"{hook.url}/in?token=query-token-secret",
             "secret": webhook_secret},
            {"name": "gone", "kind": "slack", "url": f"http://127.0.0.1:{closed}/services/T0/B0/slack-url-secret"},
        ]
        for body in channels:
            answers.append(alert_api.post("/projects/s/channels", json=body))
            assert answers[-1].status_code == 201, answers[-1].text
        # Refused input is explained without echoing the secret in it.
        for body in ({"name": "x", "kind": "slack", "url": "https://bot:userinfo-secret@93.184.216.34/services/x"},
                     {"name": "y", "kind": "webhook", "url": f"{hook.url}/in", "secret": "unusable-secret-marker"},
                     {"name": "z", "kind": "webhook", "url": f"{hook.url}/in", "secret": ["unusable-secret-marker"]}):
            answers.append(alert_api.post("/projects/s/channels", json=body))
            assert answers[-1].status_code == 422, answers[-1].text

        run = new_run(alert_api, "s", "leaky")
        send_steps(alert_api, run, steps_of({"adv/mean": [float("inf")]}))
        (alert,) = alert_api.get("/alerts", params={"project": "s"}).json()["alerts"]

        def delivery_logged():
            detail = alert_api.get(f"/alerts/{alert['id']}")
            return detail if all(s in detail.text for s in ("HTTP 400", "HTTP 500", "ConnectError")) else None

        answers.append(wait_until(delivery_logged, timeout=30, what="every channel's attempt in the delivery log"))
        wait_until(lambda: "given up" in caplog.text, timeout=30, what="the failed Slack delivery in the log")
    answers += [alert_api.get("/projects/s/channels"), alert_api.get("/alerts"),
                *(alert_api.get(f"/projects/s/channels/{c.json()['id']}") for c in answers[:3]),
                *(alert_api.post(f"/projects/s/channels/{c.json()['id']}/test") for c in answers[:3]),
                httpx.get(f"{alert_server.url}/metrics")]
    for r in answers:
        leaked = [s for s in hidden if s in r.text]
        assert leaked == [], (r.request.method, r.request.url.path, leaked, r.text[:500])
    assert [s for s in hidden if s in caplog.text] == []
