"""The server SIGKILLed while 8 runs are posting, then started again on the same port.

Nothing the server acknowledged is lost, nothing is stored twice, the hooks resume on their
own, and an alert that fires after the restart still reaches its webhook.
"""

from __future__ import annotations

import time

import fadewatch
from tests.support.alerting import add_webhook, new_secret
from tests.support.polling import wait_until
from tests.support.receiver import Receiver
from tests.support.servers import LiveServer
from tests.support.trainers import Trainer, acknowledged, stop_all, stored_once

RUNS = 8
START_S = 60  # a loaded 2-core machine can take 20 s to import and start the server
PROJECT = "faults-kill"
ALERT_ENV = {
    "FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS": "true",
    "FADEWATCH_ALERT_DELIVERY_POLL_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_BASE_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_MAX_S": "0.2",
}


def test_sigkill_during_ingest_from_8_runs_then_restart(private_postgres, tmp_path):
    db = private_postgres.database("faults_kill")
    server = LiveServer(tmp_path / "srv", db_url=db, env=ALERT_ENV).start(timeout=START_S)
    trainers: list[Trainer] = []
    with Receiver() as rx:
        try:
            with server.client() as api:
                add_webhook(api, PROJECT, rx.url, new_secret())
                r = api.put(f"/projects/{PROJECT}/rules/loss_spike", json={"metric": "loss", "condition": "> 100"})
                assert r.status_code in (200, 201), r.text
            for i in range(RUNS):
                run = fadewatch.init(project=PROJECT, name=f"run-{i}", url=server.url, dir=tmp_path / "hooks",
                                     batch_interval=0.05, batch_size=20)
                trainers.append(Trainer(run, pace=0.02).start())
            # Ingest in full flow: every run has had steps stored, and keeps posting.
            wait_until(lambda: all(acknowledged(t.run) >= 30 for t in trainers), timeout=30,
                       what="30 acknowledged steps per run")

            server.kill()
            acked_at_kill = [acknowledged(t.run) for t in trainers]
            logged_at_kill = [t.logged for t in trainers]
            for t in trainers:  # training goes on while the server is gone
                t.wait_logged(t.logged + 20)
            assert [acknowledged(t.run) for t in trainers] == acked_at_kill

            restarted = time.monotonic()
            server.start(timeout=START_S)
            started_s = time.monotonic() - restarted
            # The hooks resume on their own: each delivers past what it had logged at the kill.
            wait_until(lambda: all(acknowledged(t.run) > n for t, n in zip(trainers, logged_at_kill)),
                       timeout=START_S, what="every run delivering again after the restart")
            resumed_s = time.monotonic() - restarted
            for t, acked in zip(trainers, acked_at_kill):
                assert set(range(acked)) <= set(stored_once(server.url, PROJECT, t.run.name, settled=False))

            trainers[0].loss = 1000.0  # the rule fires on a step logged after the restart
            (message,) = rx.wait_for(1, timeout=20)
            assert message.json["type"] == "alert.firing"
            assert message.json["data"]["alert"]["rule"] == "loss_spike"
            assert message.json["data"]["step"] >= logged_at_kill[0]

            logged = [t.stop() for t in trainers]
            assert all([t.run.finish(timeout=30) for t in trainers]), [t.run.health() for t in trainers]
            for t, n in zip(trainers, logged):
                assert stored_once(server.url, PROJECT, t.run.name) == list(range(n))
                health = t.run.health()
                # A batch stored just before the kill whose answer never came back is sent again
                # after the restart: the server skips its steps as duplicates.
                assert health["sent"] == n and health["dropped"] == 0, health
            # The same, counted in the database itself.
            ((rows, distinct),) = private_postgres.execute(
                "SELECT count(*), count(DISTINCT (run_id, step)) FROM steps", database="faults_kill")
            assert rows == distinct == sum(logged)
            print(f"\n8 runs, SIGKILL: acknowledged at the kill {sum(acked_at_kill)}, logged in all {sum(logged)}, "
                  f"stored {sum(logged)} (0 lost, 0 twice), server-side duplicates skipped "
                  f"{sum(t.run.health()['duplicates'] for t in trainers)}, server up again in {started_s:.1f}s, every "
                  f"run delivering again {resumed_s - started_s:.1f}s later, slowest log() {max(t.slowest_log for t in trainers) * 1e3:.1f} ms")
        finally:
            stop_all(trainers, server)
