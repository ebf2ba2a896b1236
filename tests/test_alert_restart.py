"""A crash between the state change and its delivery loses nothing; alert state survives restarts;
the server's rule file is loaded at start, and a bad one stops the start with a clear error."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.support.alerting import add_webhook, new_run, new_secret, send_steps, steps_of
from tests.support.receiver import Receiver
from tests.support.servers import LiveServer, ThreadedServer, free_port

ENV = {
    "FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS": "true",
    "FADEWATCH_ALERT_DELIVERY_POLL_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_BASE_S": "0.05",
    "FADEWATCH_ALERT_DELIVERY_BACKOFF_MAX_S": "0.2",
}


def _of(rx: Receiver, rule: str) -> list[tuple[str, int]]:
    return [(m.json["type"], m.json["data"]["step"]) for m in rx.unique() if m.json["data"]["alert"]["rule"] == rule]


def test_sigkill_before_delivery_then_restart_delivers_and_resumes_alert_state(db_url, tmp_path):
    """The first server commits a firing alert and its outbox row, then dies by SIGKILL before sending
    (its worker is off). The restarted server delivers it, then carries on from the persisted state:
    no second firing, the resolved message, and an entropy baseline learned before the crash."""
    with Receiver() as rx:
        first = LiveServer(tmp_path / "srv", db_url=db_url, env={**ENV, "FADEWATCH_ALERT_DELIVERY_ENABLED": "false"})
        first.start()
        try:
            with first.client() as api:
                add_webhook(api, "crash", rx.url, new_secret())
                api.put("/projects/crash/rules/loss_high", json={"metric": "loss", "condition": "> 5"})
                run = new_run(api, "crash", "r")
                # Entropy baseline 2.0 over the first 10 steps; the loss rule fires at step 11.
                send_steps(api, run, steps_of({"entropy/mean": [2.0] * 12, "loss": [1.0] * 11 + [9.0]}))
                (alert,) = api.get("/alerts", params={"run_id": run, "rule": "loss_high"}).json()["alerts"]
                assert alert["state"] == "firing" and alert["step"] == 11
                (note,) = api.get(f"/alerts/{alert['id']}").json()["events"][0]["notifications"]
                assert note["status"] == "pending" and note["attempts"] == 0
        finally:
            first.kill()
        assert rx.received == []

        second = LiveServer(tmp_path / "srv", db_url=db_url, port=first.port, env=ENV)
        second.start()
        try:
            (delivered,) = rx.wait_for(1)
            assert delivered.id == note["message_id"] and delivered.json["data"]["step"] == 11
            with second.client() as api:
                # Loss clears; entropy falls to 0.4 = 20% of the pre-crash baseline from step 12: the mean
                # of the last 10 entropies is under 0.3 x 2.0 from step 20 on.
                send_steps(api, run, steps_of({"entropy/mean": [0.4] * 9, "loss": [9.0] + [1.0] * 8}, start=12))
                rx.wait_for(3)
                assert _of(rx, "loss_high") == [("alert.firing", 11), ("alert.resolved", 13)]
                assert _of(rx, "entropy_collapse") == [("alert.firing", 20)]
                (collapse,) = api.get("/alerts", params={"run_id": run, "rule": "entropy_collapse"}).json()["alerts"]
                assert collapse["values"]["baseline"] == 2.0 and collapse["severity"] == "critical"
        finally:
            second.stop()


def test_rules_file_from_the_environment_loads_at_start_as_file_rules(tmp_path, monkeypatch, make_settings):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: kl_high\n    metric: kl\n    condition: '> 0.5'\n    for_steps: 3\n    severity: critical\n"
        "  - name: no_signal\n    detector: no_signal\n    params: {bound: 0.9}\n"
        "  - name: heavy_tails\n    detector: heavy_tails\n    enabled: false\n"
        "  - name: only_elsewhere\n    metric: loss\n    condition: '> 1'\n    projects: [other]\n"
    )
    monkeypatch.setenv("FADEWATCH_ALERT_RULES_FILE", str(rules))
    from fadewatch.server.app import create_app

    srv = ThreadedServer(create_app(make_settings())).start()
    try:
        with httpx.Client(base_url=f"{srv.url}/api/v1") as api:
            listed = {r["name"]: r for r in api.get("/projects/mine/rules").json()["rules"]}
            api.patch("/projects/mine/rules/no_signal", json={"params": {"bound": 0.95}})
            patched = api.get("/projects/mine/rules/no_signal").json()
    finally:
        srv.stop()
    assert listed["kl_high"]["source"] == "file" and listed["kl_high"]["severity"] == "critical"
    assert listed["kl_high"]["overrides"] is None and listed["kl_high"]["op"] == ">"
    assert listed["no_signal"]["source"] == "file" and listed["no_signal"]["overrides"] == "default"
    assert listed["no_signal"]["params"]["bound"] == 0.9
    assert listed["no_signal"]["params"]["metric"] == "difficulty/no_signal_frac"
    assert listed["heavy_tails"]["enabled"] is False
    assert listed["entropy_collapse"]["source"] == "default"
    assert "only_elsewhere" not in listed
    assert patched["source"] == "api" and patched["overrides"] == "file" and patched["params"]["bound"] == 0.95


def test_a_bad_rules_file_stops_the_server_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    metric: loss\n    condition: 'bigger than 3'\n")
    cases = {
        str(bad): "rule 1: condition is an operator and a number",
        str(tmp_path / "missing.yaml"): "cannot read rule file",
    }
    for path, expected in cases.items():
        proc = subprocess.run(
            [sys.executable, "-m", "fadewatch.cli", "server", "--port", str(free_port()), "--db",
             f"sqlite:///{tmp_path / 'x.db'}", "--rules", path],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Error: alert rules:" in proc.stderr and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_lease_shorter_than_three_send_timeouts_stops_the_start_with_a_clear_error(monkeypatch):
    """A send may take its timeout three times over; a shorter lease would let another server send again."""
    import click
    import pytest

    from fadewatch.server.cli import build_settings

    monkeypatch.setenv("FADEWATCH_ALERT_DELIVERY_TIMEOUT_S", "20")
    with pytest.raises(click.ClickException) as refused:
        build_settings()
    assert refused.value.message == ("invalid server settings: FADEWATCH_ALERT_DELIVERY_LEASE_S (30) must be at "
                                     "least 3 x FADEWATCH_ALERT_DELIVERY_TIMEOUT_S (20)")
    monkeypatch.setenv("FADEWATCH_ALERT_DELIVERY_LEASE_S", "60")
    assert build_settings().alert_delivery_lease_s == 60
