"""Notifications reach a real HTTP receiver: signed, in order, complete, and exactly once after dedup."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from tests.support.alerting import (add_webhook, documented_receiver, new_run, new_secret, send_steps,
                                    standard_webhooks_valid, steps_of)
from tests.support.polling import wait_until
from tests.support.receiver import Receiver


def _loss_rule(api, project: str, **extra) -> None:
    rule = {"metric": "loss", "condition": "> 5", "for_steps": 2, **extra}
    assert api.put(f"/projects/{project}/rules/loss_high", json=rule).status_code == 201


def _stream(losses: list[float]) -> list[dict]:
    n = len(losses)
    return steps_of({"loss": losses, "sign/balance": [0.3] * n, "sign/m_pos": [0.65] * n, "sign/m_neg": [0.35] * n,
                     "difficulty/solve_rate": [0.8] * n, "difficulty/no_signal_frac": [0.5] * n})


def test_webhook_gets_signed_firing_then_resolved_messages_in_order(alert_api):
    secret = new_secret()
    with Receiver() as rx:
        add_webhook(alert_api, "sig", f"{rx.url}/hook", secret)
        _loss_rule(alert_api, "sig")
        run = new_run(alert_api, "sig", "r1")
        for record in _stream([1, 1, 1, 10, 10, 10, 1, 1]):  # trips at 3, fires at 4, clears at 6
            send_steps(alert_api, run, [record])
        firing, resolved = rx.wait_for(2)

    assert [m.json["type"] for m in (firing, resolved)] == ["alert.firing", "alert.resolved"]
    for m in (firing, resolved):
        assert m.path == "/hook"
        assert standard_webhooks_valid(secret, m.headers, m.body)
        assert not standard_webhooks_valid(secret, m.headers, m.body.replace(b"loss", b"LOSS"))
        assert m.headers["webhook-id"] == m.json["data"]["message_id"]
        assert abs(int(m.headers["webhook-timestamp"]) - time.time()) < 60
        assert m.headers["content-type"] == "application/json"
    data = firing.json["data"]
    assert data["step"] == 4 and data["status"] == "firing"
    assert data["alert"]["rule"] == "loss_high" and data["alert"]["severity"] == "warning"
    assert data["alert"]["summary"] == "loss = 10 > 5"
    assert data["values"] == {"loss": 10.0, "threshold": 5.0}
    assert data["run"]["id"] == run and data["run"]["name"] == "r1" and data["run"]["project"] == "sig"
    assert data["run"]["url"].endswith(f"/runs/{run}")
    assert "success-heavy" in data["diagnosis"]["sign"]["reading"]
    assert data["diagnosis"]["sign"]["sign/balance"] == 0.3
    assert "solve rate 0.80" in data["diagnosis"]["difficulty"]["reading"]
    assert "50% of groups" in data["diagnosis"]["difficulty"]["reading"]
    receive = documented_receiver(secret)
    assert receive(firing.headers, firing.body)["data"]["step"] == 4
    assert receive(firing.headers, firing.body) is None, "the documented receiver drops a repeat by id"
    with pytest.raises(ValueError, match="bad signature"):
        receive(resolved.headers, resolved.body + b" ")
    done = resolved.json["data"]
    assert done["step"] == 6 and done["fired_step"] == 4 and done["resolved_step"] == 6
    assert done["alert"]["id"] == data["alert"]["id"] and done["values"] == {"loss": 1.0, "threshold": 5.0}
    assert "no longer" in done["alert"]["summary"]

    alerts = alert_api.get("/alerts", params={"run_id": run}).json()
    assert alerts["total"] == 1
    (alert,) = alerts["alerts"]
    assert alert["state"] == "resolved" and alert["step"] == 4 and alert["rule"] == "loss_high"
    detail = alert_api.get(f"/alerts/{alert['id']}").json()
    assert [e["kind"] for e in detail["events"]] == ["firing", "resolved"]
    for event, message in zip(detail["events"], (firing, resolved)):
        (note,) = event["notifications"]
        assert note["message_id"] == message.id and note["status"] == "delivered"
        assert [a["outcome"] for a in note["log"]] == ["delivered"] and note["log"][0]["status_code"] == 200


def test_failing_then_rate_limiting_receiver_gets_everything_once_after_dedup(alert_api, alert_server):
    script = [(500, {}), (429, {"Retry-After": "1"}), (503, {})]
    with Receiver(script=script) as rx:
        add_webhook(alert_api, "flaky", rx.url, new_secret())
        _loss_rule(alert_api, "flaky")
        run = new_run(alert_api, "flaky", "r")
        # Three episodes: firing at 2, 8, 14; resolved at 4, 10, 16.
        send_steps(alert_api, run, _stream([1, 10, 10, 10, 1, 1] * 3))
        unique = rx.wait_for(6, timeout=20)
        time.sleep(0.3)  # a late duplicate would arrive now; none may
        every = list(rx.received)

    ids = [m.id for m in unique]
    assert len(set(ids)) == 6 and len(rx.accepted()) == 6, "each message accepted exactly once"
    assert [(m.json["type"], m.json["data"]["step"]) for m in unique] == [
        ("alert.firing", 2), ("alert.resolved", 4), ("alert.firing", 8), ("alert.resolved", 10),
        ("alert.firing", 14), ("alert.resolved", 16)]
    # The refused tries were the first message, retried under the same id, after Retry-After.
    assert [m.status for m in every[:4]] == [500, 429, 503, 200]
    assert {m.id for m in every[:4]} == {ids[0]}
    assert every[2].at - every[1].at >= 0.9

    alert_id = unique[0].json["data"]["alert"]["id"]
    first = alert_api.get(f"/alerts/{alert_id}").json()["events"][0]["notifications"][0]
    assert first["attempts"] == 4 and first["status"] == "delivered"
    assert [(a["outcome"], a["status_code"]) for a in first["log"]] == [
        ("retry", 500), ("retry", 429), ("retry", 503), ("delivered", 200)]
    metrics = httpx.get(f"{alert_server.url}/metrics").text
    assert 'fadewatch_alert_deliveries_total{kind="webhook",outcome="retry"} 3.0' in metrics
    assert 'fadewatch_alert_deliveries_total{kind="webhook",outcome="delivered"} 6.0' in metrics


def test_receiver_rejection_is_not_retried_and_the_queue_moves_on(alert_api):
    with Receiver(script=[(400, {})]) as rx:
        add_webhook(alert_api, "bad", rx.url, new_secret())
        _loss_rule(alert_api, "bad")
        run = new_run(alert_api, "bad", "r")
        send_steps(alert_api, run, _stream([10, 10, 1]))
        (resolved,) = rx.wait_for(1)
    assert resolved.json["type"] == "alert.resolved" and len(rx.received) == 2
    (alert,) = alert_api.get("/alerts", params={"run_id": run}).json()["alerts"]
    firing = alert_api.get(f"/alerts/{alert['id']}").json()["events"][0]["notifications"][0]
    assert firing["status"] == "failed" and firing["attempts"] == 1 and "HTTP 400" in firing["last_error"]


def test_slack_channel_gets_block_kit_with_fallback_text(alert_api):
    with Receiver() as rx:
        r = alert_api.post("/projects/sl/channels", json={"name": "team", "kind": "slack",
                                                         "url": f"{rx.url}/services/T1/B2/abc"})
        assert r.status_code == 201
        _loss_rule(alert_api, "sl", severity="critical")
        run = new_run(alert_api, "sl", "slack-run")
        send_steps(alert_api, run, _stream([10, 10]))
        (message,) = rx.wait_for(1)
    body = message.json
    assert "webhook-signature" not in message.headers
    assert body["text"].startswith("[CRITICAL] Threshold firing on sl / slack-run at step 1")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds
    button = next(b for b in body["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"].endswith(f"/runs/{run}")
    text = str(body["blocks"])
    assert "loss_high" in text and "Sign axis" in text and "success-heavy" in text


def test_messages_queued_for_a_disabled_or_deleted_channel_are_dropped(alert_api):
    with Receiver(default=503) as down:
        one = add_webhook(alert_api, "drop", down.url, new_secret(), name="one")
        two = add_webhook(alert_api, "drop", down.url, new_secret(), name="two")
        _loss_rule(alert_api, "drop")
        run = new_run(alert_api, "drop", "r")
        send_steps(alert_api, run, _stream([10, 10, 1]))  # firing + resolved, for each channel
        wait_until(lambda: len(down.received) >= 4, what="both channels retrying")
        assert alert_api.patch(f"/projects/drop/channels/{one['id']}", json={"enabled": False}).status_code == 200
        assert alert_api.delete(f"/projects/drop/channels/{two['id']}").status_code == 204

        def notes():
            (alert,) = alert_api.get("/alerts", params={"run_id": run}).json()["alerts"]
            events = alert_api.get(f"/alerts/{alert['id']}").json()["events"]
            return [n for e in events for n in e["notifications"]]

        wait_until(lambda: all(n["status"] == "failed" for n in notes()), what="queued messages dropped")
        settled = len(down.received)
        time.sleep(0.5)  # retries run every 0.05-0.2 s here: any would show up now
        assert len(down.received) == settled
    assert sorted(n["last_error"] for n in notes()) == ["channel deleted"] * 2 + ["channel disabled"] * 2


def test_send_test_reports_how_the_receiver_answered(alert_api):
    secret = new_secret()
    with Receiver(script=[(200, {}), (500, {})]) as rx:
        channel = add_webhook(alert_api, "probe", f"{rx.url}/in", secret)
        ok = alert_api.post(f"/projects/probe/channels/{channel['id']}/test").json()
        failing = alert_api.post(f"/projects/probe/channels/{channel['id']}/test").json()
    assert ok["outcome"] == "delivered" and ok["status_code"] == 200 and ok["error"] is None
    assert failing["outcome"] == "retry" and failing["status_code"] == 500 and "HTTP 500" in failing["error"]
    first = rx.received[0]
    assert first.id == ok["message_id"] and standard_webhooks_valid(secret, first.headers, first.body)
    assert first.json["type"] == "alert.test" and "probe" in first.json["data"]["summary"]
    assert alert_api.post("/projects/probe/channels/999/test").status_code == 404


def test_one_episode_of_a_noisy_signal_is_two_messages_each_with_its_diagnosis_card(alert_api):
    """A loss wandering about its bound for 80 steps, then settling: with hysteresis and a hold, one
    episode, so one firing and one resolved message per channel, each carrying the diagnosis card:
    the run's regime, the numbers that tripped the rule, the entropy forecast and an action."""
    n = 80
    loss = [5 + 1.5 * math.sin(2.3 * i) for i in range(n)] + [1.0] * 12
    m = len(loss)
    stream = {"loss": loss, "sign/balance": [0.95] * m, "sign/m_pos": [0.4] * m, "sign/m_neg": [0.01] * m,
              "difficulty/solve_rate": [0.45] * m, "entropy/mean": [1.8 - 0.004 * i for i in range(m)]}
    with Receiver() as rx:
        add_webhook(alert_api, "card", f"{rx.url}/hook", new_secret())
        assert alert_api.post("/projects/card/channels", json={"name": "team", "kind": "slack",
                                                             "url": f"{rx.url}/services/T1/B2/x"}).status_code == 201
        rule = {"metric": "loss", "condition": "> 5", "clear_value": 4.0, "keep_firing_steps": 5}
        assert alert_api.put("/projects/card/rules/loss_high", json=rule).status_code == 201
        run = new_run(alert_api, "card", "noisy")
        for i in range(0, m, 10):  # as a hook sends them, a batch at a time
            send_steps(alert_api, run, steps_of({k: v[i:i + 10] for k, v in stream.items()}, start=i))
        rx.wait_for(4)
        time.sleep(0.3)  # a third message of this episode would arrive now; none may
        mine = [x for x in rx.unique() if (x.json.get("data") or x.json.get("blocks"))
                and "loss_high" in x.body.decode()]
    hooks = [x.json for x in mine if x.path == "/hook"]
    slack = [x.json for x in mine if x.path.startswith("/services/")]
    assert [h["type"] for h in hooks] == ["alert.firing", "alert.resolved"] and len(slack) == 2
    firing, resolved = hooks[0]["data"], hooks[1]["data"]
    assert resolved["fired_step"] == firing["step"] and resolved["step"] == 85  # the 6th clear step, from step 80
    card = firing["diagnosis"]
    assert "success-heavy" in card["regime"] and card["regime_state"]["sign"] == "success-heavy"
    assert "loss 6.119" in card["tripped"] and "no entropy forecast yet" in card["forecast"]  # fired at step 1
    assert "collapse level" in resolved["diagnosis"]["forecast"]  # by step 85 the forecast has its window
    assert "lower the weight of successes" in card["action"]
    assert card["sign"]["sign/balance"] == 0.95 and "success-heavy" in card["sign"]["reading"]
    text = str(slack[0]["blocks"])
    for label in ("Regime", "Tripped by", "Forecast", "Suggested action", "Sign axis"):
        assert f"*{label}:*" in text
    episodes = alert_api.get(f"/alerts/{firing['alert']['id']}").json()["episodes"]
    assert [(e["number"], e["fired_step"], e["resolved_step"]) for e in episodes] == [(1, firing["step"], 85)]


def test_the_worker_wakes_at_the_outer_commit_not_at_the_savepoint(tmp_path, make_settings):
    """Alert evaluation queues messages inside a savepoint: waking at its release, the worker
    would claim before the commit made them visible and leave them to its next poll."""
    from sqlalchemy import event, text

    from fadewatch.server.alerts.delivery.messages import OUTBOX_FLAG
    from fadewatch.server.alerts.delivery.worker import DeliveryWorker
    from fadewatch.server.app import prepare_database

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'wake.db'}")
    db = prepare_database(settings)
    worker = DeliveryWorker(db, settings)
    event.listen(db.factory, "after_commit", worker._after_commit)
    try:
        session = db.factory()
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            session.info[OUTBOX_FLAG] = True
        assert not worker._wake.is_set()  # the savepoint is released, nothing is visible yet
        session.commit()
        assert worker._wake.is_set()
        session.close()
    finally:
        event.remove(db.factory, "after_commit", worker._after_commit)
        db.engine.dispose()


def _waiting_on_locks(db) -> int:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND wait_event_type = 'Lock'"))


def test_claims_take_no_more_than_a_pass_sends_and_a_lease_excludes_every_other_worker(db_url, make_settings):
    """Six channels with a due message each. A worker claims at most what it sends at once; a
    second worker claiming at the same moment (its UPDATE waits on the first's row locks, then
    re-checks the lease) wins none of those; once the leases run out, the messages are due again."""
    import threading

    from fadewatch.server.alerts.models import AlertChannel, AlertNotification
    from fadewatch.server.app import prepare_database
    from fadewatch.server.store import delivery as queue
    from fadewatch.server.store.runs import get_or_create_project

    db = prepare_database(make_settings(database_url=db_url))
    now = time.time()
    try:
        with db.write_transaction() as s:
            project = get_or_create_project(s, "claims")
            s.flush()
            for i in range(6):
                channel = AlertChannel(project_id=project.id, name=f"c{i}", kind="webhook", url="http://127.0.0.1:9/",
                                       secret=None, enabled=True, created_at=now, updated_at=now)
                s.add(channel)
                s.flush()
                s.add(AlertNotification(message_id=f"m{i}", project_id=project.id, channel_id=channel.id,
                                        channel_name=channel.name, kind="firing", body="{}", status="pending",
                                        attempts=0, created_at=now, next_attempt_at=now))
        with db.write_transaction() as s:
            first, _ = queue.claim(s, now, now + 30, limit=4)
        assert len(first) == 4

        rival: dict = {}
        with db.write_transaction() as s:
            second, _ = queue.claim(s, now, now + 30, limit=4)

            def claim_meanwhile() -> None:
                with db.write_transaction() as other:
                    rival["jobs"], rival["next_due"] = queue.claim(other, now, now + 30, limit=4)

            thread = threading.Thread(target=claim_meanwhile)
            thread.start()
            if db_url.startswith("postgresql"):  # SQLite's writers take turns in the process anyway
                wait_until(lambda: _waiting_on_locks(db) > 0, timeout=10, what="the rival claim waiting on row locks")
        thread.join(10)
        assert len(second) == 2 and {j.id for j in first}.isdisjoint(j.id for j in second)
        assert rival == {"jobs": [], "next_due": now + 30}

        with db.write_transaction() as s:
            again, _ = queue.claim(s, now + 31, now + 61, limit=10)
        assert sorted(j.message_id for j in again) == [f"m{i}" for i in range(6)]
    finally:
        db.engine.dispose()
