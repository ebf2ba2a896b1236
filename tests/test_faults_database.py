"""The database goes away, turns read-only or fills up while runs are posting.

While it cannot store, the server says so honestly (/readyz 503, ingest 503 or 507 with a
Retry-After, never a 500), keeps what it stored, and takes everything once the database is
back; the hooks keep training, keep their records and resend them on their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import event, text

import fadewatch
from tests.support.alerting import add_webhook, new_secret
from tests.support.polling import wait_until
from tests.support.receiver import Receiver
from tests.support.servers import ThreadedServer
from tests.support.trainers import Trainer, acknowledged, stop_all, stored_once


def _serve(make_settings, url: str, database=None) -> ThreadedServer:
    """A real server on a free port, in this process (no second interpreter to import), whose
    alert worker may post to a loopback receiver and retries within a fraction of a second."""
    from fadewatch.server.app import create_app, prepare_database

    settings = make_settings(database_url=url, alert_allow_loopback_targets=True, alert_delivery_poll_s=0.05,
                             alert_delivery_backoff_base_s=0.05, alert_delivery_backoff_max_s=0.2)
    return ThreadedServer(create_app(settings, database or prepare_database(settings))).start()


def _start_runs(url: str, project: str, count: int, spool_dir) -> list[Trainer]:
    return [Trainer(fadewatch.init(project=project, name=f"run-{i}", url=url, dir=spool_dir,
                                   batch_interval=0.05, batch_size=20)).start() for i in range(count)]


def _refused_while_training(trainers: list[Trainer], extra: int = 20) -> list[int]:
    """Training goes on while nothing is acknowledged; the acknowledged counts."""
    acked = [acknowledged(t.run) for t in trainers]
    for t in trainers:
        t.wait_logged(t.logged + extra)
    assert [acknowledged(t.run) for t in trainers] == acked
    return acked


def _resumed(trainers: list[Trainer], acked: list[int]) -> float:
    """Seconds until every run has had steps past ``acked`` stored: the hooks resume unaided."""
    started = time.monotonic()
    wait_until(lambda: all(acknowledged(t.run) > n for t, n in zip(trainers, acked)), timeout=20,
               what="every run delivering again")
    return time.monotonic() - started


def _finish_and_check(server, project: str, trainers: list[Trainer]) -> int:
    """Stop training, finish every run, and check each logged step is stored exactly once."""
    logged = [t.stop() for t in trainers]
    assert all([t.run.finish(timeout=30) for t in trainers]), [t.run.health() for t in trainers]
    for t, n in zip(trainers, logged):
        assert stored_once(server.url, project, t.run.name) == list(range(n))
        assert t.run.health()["sent"] == n and t.run.health()["dropped"] == 0
    return sum(logged)


def _server_errors(url: str) -> list[str]:
    """Lines of /metrics counting 5xx answers other than 503 and 507."""
    body = httpx.get(f"{url}/metrics", timeout=5).text
    return [line for line in body.splitlines() if line.startswith("fadewatch_http_requests_total")
            and 'status="5' in line and 'status="503"' not in line and 'status="507"' not in line
            and not line.endswith(" 0.0")]


class Probe:
    """Posts one new step at a time to a run of its own, to see what ingest answers."""

    def __init__(self, url: str, project: str):
        self.api = httpx.Client(base_url=f"{url}/api/v1", timeout=10)
        self.run_id = self.api.post("/runs", json={"project": project, "name": "probe"}).json()["id"]
        self.step = 0

    def post(self) -> httpx.Response:
        self.step += 1
        return self.api.post(f"/runs/{self.run_id}/steps", json={"records": [{"step": self.step, "scalars": {"x": 1.0}}]})

    def refused(self, status: int, words: str) -> None:
        r = self.post()
        assert r.status_code == status and words in r.json()["detail"], (r.status_code, r.text)
        assert float(r.headers["Retry-After"]) > 0


def _ready(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=5).status_code


@pytest.fixture
def rx() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port."""
    with Receiver() as receiver:
        yield receiver


def test_postgres_stopped_then_restarted_mid_run(private_postgres, make_settings, rx, tmp_path):
    server = _serve(make_settings, private_postgres.database("faults_restart"))
    probe = Probe(server.url, "faults-pg")
    add_webhook(probe.api, "faults-pg", rx.url, new_secret())
    r = probe.api.put("/projects/faults-pg/rules/loss_spike", json={"metric": "loss", "condition": "> 100"})
    assert r.status_code in (200, 201), r.text
    trainers = _start_runs(server.url, "faults-pg", 3, tmp_path / "hooks")
    try:
        wait_until(lambda: all(acknowledged(t.run) >= 20 for t in trainers), timeout=20, what="first deliveries")
        stopped = time.monotonic()
        private_postgres.stop()
        wait_until(lambda: _ready(server.url) == 503, timeout=10, what="/readyz to report the database gone")
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200  # the process lives
        probe.refused(503, "database unavailable")
        acked = _refused_while_training(trainers)
        assert all("503" in (t.run.health()["last_error"] or "") for t in trainers)

        private_postgres.start()
        down_s = time.monotonic() - stopped
        resumed_s = _resumed(trainers, acked)
        outage_s = time.monotonic() - stopped
        assert _ready(server.url) == 200

        failed_before = sum(t.run.health()["failed_batches"] for t in trainers)
        acked = [acknowledged(t.run) for t in trainers]
        private_postgres.restart()  # pg_ctlcluster restart while the runs post
        restart_resumed_s = _resumed(trainers, acked)
        failed = sum(t.run.health()["failed_batches"] for t in trainers) - failed_before
        # The alert worker outlived both outages: a rule firing now is still delivered.
        trainers[0].loss = 1000.0
        (message,) = rx.wait_for(1, timeout=20)
        assert message.json["type"] == "alert.firing" and message.json["data"]["alert"]["rule"] == "loss_spike"
        total = _finish_and_check(server, "faults-pg", trainers)
        assert total > 0 and _server_errors(server.url) == []
        print(f"\nPostgreSQL stopped for {down_s:.1f}s: runs delivering again {resumed_s:.1f}s after it was "
              f"back ({outage_s:.1f}s after the stop began); "
              f"pg_ctlcluster restart: {failed} batch(es) answered 503, delivering again {restart_resumed_s:.1f}s "
              f"after the restart returned; {total} steps logged, {total} stored once, 0 lost")
    finally:
        probe.api.close()
        stop_all(trainers, server)


def test_postgres_read_only_then_writable_again(private_postgres, make_settings, tmp_path):
    name = "faults_read_only"
    server = _serve(make_settings, private_postgres.database(name))
    probe = Probe(server.url, "faults-ro")
    trainers = _start_runs(server.url, "faults-ro", 2, tmp_path / "hooks")

    def read_only(on: bool) -> None:
        private_postgres.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
        # The setting applies to new sessions: end the server's current ones.
        private_postgres.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")

    try:
        wait_until(lambda: all(acknowledged(t.run) >= 20 for t in trainers), timeout=20, what="first deliveries")
        before = stored_once(server.url, "faults-ro", "run-0", settled=False)
        read_only(True)
        wait_until(lambda: _ready(server.url) == 503, timeout=10, what="/readyz to report the database read-only")
        probe.refused(503, "read-only")
        _refused_while_training(trainers)
        # Reads still work, and everything stored before is still there.
        assert set(before) <= set(stored_once(server.url, "faults-ro", "run-0", settled=False))

        acked = [acknowledged(t.run) for t in trainers]
        read_only(False)
        resumed_s = _resumed(trainers, acked)
        assert _ready(server.url) == 200
        total = _finish_and_check(server, "faults-ro", trainers)
        assert _server_errors(server.url) == []
        print(f"\nPostgreSQL read-only: runs delivering again {resumed_s:.1f}s after it was made writable; "
              f"{total} steps logged, {total} stored once, 0 lost")
    finally:
        probe.api.close()
        stop_all(trainers, server)
        private_postgres.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')


def test_sqlite_full_then_room_again(make_settings, tmp_path):
    """SQLite's max_page_count stands in for a full disk: the same SQLITE_FULL error, safely."""
    from fadewatch.server.app import prepare_database

    url = f"sqlite:///{tmp_path / 'full.db'}"
    database = prepare_database(make_settings(database_url=url))
    cap: dict[str, int | None] = {"pages": None}

    @event.listens_for(database.engine, "checkout")
    def _cap_pages(dbapi_connection, _record, _proxy) -> None:
        if cap["pages"] is not None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {cap['pages']}")

    with database.engine.connect() as conn:
        unlimited = conn.execute(text("PRAGMA max_page_count")).scalar()
    server = _serve(make_settings, url, database)
    probe = Probe(server.url, "faults-full")
    trainers = _start_runs(server.url, "faults-full", 2, tmp_path / "hooks")
    try:
        wait_until(lambda: all(acknowledged(t.run) >= 20 for t in trainers), timeout=20, what="first deliveries")
        with database.engine.connect() as conn:
            cap["pages"] = conn.execute(text("PRAGMA page_count")).scalar()  # not one page more
        # Pages freed inside the file still take rows for a while: post until none is left.
        wait_until(lambda: probe.post().status_code == 507, timeout=20, what="ingest to answer 507")
        probe.refused(507, "database is full")
        _refused_while_training(trainers)
        assert all("507" in (t.run.health()["last_error"] or "") for t in trainers)
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200  # reads are still served

        acked = [acknowledged(t.run) for t in trainers]
        cap["pages"] = unlimited
        resumed_s = _resumed(trainers, acked)
        total = _finish_and_check(server, "faults-full", trainers)
        assert total > 0 and _server_errors(server.url) == []
        print(f"\nSQLite full: runs delivering again {resumed_s:.1f}s after room was made; "
              f"{total} steps logged, {total} stored once, 0 lost")
    finally:
        probe.api.close()
        stop_all(trainers, server)
