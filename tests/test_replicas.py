"""Two `fadewatch server` replicas on one PostgreSQL database, behind a round-robin proxy.

First, batches of one run are posted four at a time, so both replicas store and evaluate
batches of the same run at once: the run's row lock takes them in turn, and each rule fires
once. Then a real hook run posts through the proxy, so its batches land on both replicas in
turn. Its loss trips two alert rules; the first notification is held by the receiver, and
the replica whose delivery worker sent it is SIGKILLed while it waits, mid-run. The hook
carries on through the survivor. Every step is stored once, each rule has one alert for the run with
its two episodes, and the receiver accepts exactly one message per transition: the one the
dead replica held goes out again from the survivor once its lease runs out, under the same
webhook-id.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

import fadewatch
from tests.support.alerting import add_webhook, new_run, new_secret
from tests.support.polling import wait_until
from tests.support.proxy import RoundRobinProxy
from tests.support.receiver import Receiver
from tests.support.servers import LiveServer
from tests.support.trainers import Trainer, acknowledged, stop_all, stored_once

PROJECT = "replicas"
BURST = "replicas-burst"
START_S = 120  # two servers importing at once on a loaded 2-core machine have taken 40 s
LEASE_S = 7.5  # how long the killed replica's claim keeps its message from the survivor
ENV = {
    "FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS": "true",
    "FADEWATCH_ALERT_DELIVERY_POLL_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_BASE_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_MAX_S": "0.2",
    "FADEWATCH_ALERT_DELIVERY_TIMEOUT_S": str(LEASE_S / 3),
    "FADEWATCH_ALERT_DELIVERY_LEASE_S": str(LEASE_S),
}
RULES = {"loss_high": "> 100", "loss_very_high": "> 500"}


def _sender_of(port: int, replicas: list[LiveServer]) -> LiveServer:
    """The replica whose process holds the TCP connection from this source port."""
    for replica in replicas:
        if any(c.laddr and c.laddr.port == port for c in psutil.Process(replica.proc.pid).net_connections("tcp")):
            return replica
    raise AssertionError(f"no replica holds a connection from port {port}")


def _states(api, run_id: int) -> dict[str, str]:
    alerts = api.get("/alerts", params={"run_id": run_id}).json()["alerts"]
    return {a["rule"]: a["state"] for a in alerts if a["rule"] in RULES}


def _burst(api: httpx.Client, run_id: int, batches: int = 12, size: int = 10) -> None:
    """Batches of one run, every step over both bounds, posted four at a time (so concurrently)."""
    def post(b: int) -> None:
        records = [{"step": s, "scalars": {"loss": 1000.0}} for s in range(b * size, (b + 1) * size)]
        r = api.post(f"/runs/{run_id}/steps", json={"records": records})
        assert r.status_code == 200 and r.json()["stored"] == size, r.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, range(batches)))


def _evaluation_failures(replica: LiveServer) -> float:
    text_ = httpx.get(f"{replica.url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text_.splitlines()
               if line.startswith("fadewatch_alert_evaluation_failures_total"))


def _episode(trainer: Trainer, api, run_id: int) -> None:
    """Loss over both bounds until both rules fire, then back under until both resolve."""
    trainer.loss = 1000.0
    wait_until(lambda: _states(api, run_id) == dict.fromkeys(RULES, "firing"), timeout=20,
               what="both rules firing")
    trainer.loss = 1.0
    wait_until(lambda: _states(api, run_id) == dict.fromkeys(RULES, "resolved"), timeout=20,
               what="both rules resolved")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_replicas_one_killed_mid_run_store_once_alert_once_notify_once(db_url, tmp_path):
    replicas = [LiveServer(tmp_path / f"replica-{i}", db_url=db_url, env=ENV) for i in range(2)]
    with ThreadPoolExecutor(2) as pool:  # both start at once: imports dominate the start
        list(pool.map(lambda r: r.start(timeout=START_S), replicas))
    trainer = None
    with Receiver(hold=1) as rx, Receiver() as burst_rx, RoundRobinProxy([r.url for r in replicas]) as proxy:
        try:
            with httpx.Client(base_url=f"{proxy.url}/api/v1", timeout=30) as api:
                for project, receiver in ((PROJECT, rx), (BURST, burst_rx)):
                    add_webhook(api, project, receiver.url, new_secret())
                    for name, condition in RULES.items():
                        r = api.put(f"/projects/{project}/rules/{name}", json={"metric": "loss", "condition": condition})
                        assert r.status_code in (200, 201), r.text

                # Concurrent batches of one run on both replicas: one alert per rule, fired once.
                burst = new_run(api, BURST, "burst")
                _burst(api, burst)
                for alert in api.get("/alerts", params={"run_id": burst}).json()["alerts"]:
                    kinds = [e["kind"] for e in api.get(f"/alerts/{alert['id']}").json()["events"]]
                    assert kinds == (["firing"] if alert["rule"] in RULES else []), (alert["rule"], kinds)
                assert _states(api, burst) == dict.fromkeys(RULES, "firing")
                assert stored_once(proxy.url, BURST, "burst") == list(range(120))
                assert [_evaluation_failures(r) for r in replicas] == [0, 0]
                fired = burst_rx.wait_for(len(RULES), timeout=20)
                assert sorted(m.json["data"]["alert"]["rule"] for m in fired) == sorted(RULES)
                run = fadewatch.init(project=PROJECT, name="r", url=proxy.url, dir=tmp_path / "hook",
                                     batch_interval=0.05, batch_size=10)
                trainer = Trainer(run, pace=0.01).start()
                run_id = wait_until(lambda: run.id, timeout=30, what="the run created")
                # Batches of the run are stored by both replicas.
                wait_until(lambda: all(proxy.answered(r.url, "POST", f"/runs/{run_id}/steps") >= 2 for r in replicas),
                           timeout=30, what="steps stored through both replicas")

                # Both rules fire; the first message is sent, and held by the receiver.
                trainer.loss = 1000.0
                (held,) = wait_until(lambda: rx.held, timeout=20, what="the first notification at the receiver")
                victim = _sender_of(held.peer_port, replicas)
                survivor = next(r for r in replicas if r is not victim)
                logged_at_kill = trainer.logged
                victim.kill()  # mid-run, mid-delivery: its lease on the held message stays
                rx.release()
                trainer.loss = 1.0
                wait_until(lambda: _states(api, run_id) == dict.fromkeys(RULES, "resolved"), timeout=20,
                           what="both rules resolved after the kill")
                # The hook goes on through the survivor alone, and a second episode follows.
                wait_until(lambda: acknowledged(run) > logged_at_kill + 20, timeout=30,
                           what="the hook delivering past the kill")
                _episode(trainer, api, run_id)
                logged = trainer.stop()
                assert run.finish(timeout=30), run.health()

                # Every step stored once, read back over the API and counted in the database.
                assert stored_once(proxy.url, PROJECT, "r") == list(range(logged))
                health = run.health()
                assert health["sent"] == logged and health["dropped"] == 0, health
                engine = create_engine(db_url)
                try:
                    with engine.connect() as conn:
                        rows, distinct = conn.execute(text(
                            "SELECT count(*), count(DISTINCT step) FROM steps WHERE run_id = :r"), {"r": run_id}).one()
                        states = conn.execute(text(
                            "SELECT rule, count(*) FROM alert_states WHERE run_id = :r GROUP BY rule"),
                            {"r": run_id}).all()
                finally:
                    engine.dispose()
                assert rows == distinct == logged
                assert all(n == 1 for _, n in states), states

                # One alert per rule for the run, with two episodes: fired, resolved, fired, resolved.
                alerts = [a for a in api.get("/alerts", params={"run_id": run_id}).json()["alerts"]
                          if a["rule"] in RULES]
                assert sorted(a["rule"] for a in alerts) == sorted(RULES)
                expected_kinds = ["firing", "resolved", "firing", "resolved"]
                for alert in alerts:
                    events = api.get(f"/alerts/{alert['id']}").json()["events"]
                    kinds = [e["kind"] for e in sorted(events, key=lambda e: e["id"])]
                    assert kinds == expected_kinds, (alert["rule"], kinds)

            # One accepted message per transition: 2 rules x 2 episodes x (firing, resolved).
            wait_until(lambda: len(rx.accepted()) >= 8, timeout=LEASE_S + 20,
                       what=f"8 accepted notifications (have {len(rx.accepted())})")
            accepted = rx.accepted()
            assert len(accepted) == 8 and len({m.id for m in accepted}) == 8
            for rule in RULES:
                types = [m.json["type"] for m in accepted if m.json["data"]["alert"]["rule"] == rule]
                assert types == ["alert.firing", "alert.resolved"] * 2, (rule, types)
            # The held message went out again from the survivor, under the same webhook-id.
            assert [m.id for m in accepted].count(held.id) == 1
            assert survivor.running and not victim.running
            assert len(burst_rx.accepted()) == len(RULES)  # nothing more, from either replica
        finally:
            if trainer is not None:
                stop_all([trainer])
            for r in replicas:
                r.stop()
