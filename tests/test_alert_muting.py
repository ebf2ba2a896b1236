"""Silences hold back the notifications of matching alerts until they expire; a firing critical
alert inhibits the warnings of its own run, and only of its own run."""

from __future__ import annotations

import time

from tests.support.alerting import add_webhook, new_run, new_secret, send_steps, steps_of
from tests.support.receiver import Receiver


def _messages(rx: Receiver) -> list[tuple[str, str, str, int]]:
    return [(m.json["data"]["run"]["name"], m.json["data"]["alert"]["rule"], m.json["data"]["event"],
             m.json["data"]["step"]) for m in rx.unique()]


def _alert(api, run: int, rule: str) -> dict:
    (alert,) = api.get("/alerts", params={"run_id": run, "rule": rule}).json()["alerts"]
    return api.get(f"/alerts/{alert['id']}").json()


def test_a_silence_holds_matching_notifications_until_it_is_expired(alert_api):
    api = alert_api
    with Receiver() as rx:
        add_webhook(api, "quiet", rx.url, new_secret())
        api.put("/projects/quiet/rules/loss_high", json={"metric": "loss", "condition": "> 5"})
        r = api.post("/projects/quiet/silences", json={
            "matchers": [{"name": "rule", "value": "loss_high"}, {"name": "run", "op": "~", "value": "exp-*"}],
            "duration_s": 600, "comment": "known issue", "created_by": "ana"})
        assert r.status_code == 201
        silence = r.json()
        assert silence["active"] and silence["comment"] == "known issue"

        muted, loud = new_run(api, "quiet", "exp-1"), new_run(api, "quiet", "baseline")
        send_steps(api, muted, steps_of({"loss": [10.0, 10.0]}))
        send_steps(api, loud, steps_of({"loss": [10.0]}))
        rx.wait_for(1)
        held = _alert(api, muted, "loss_high")
        assert held["state"] == "firing" and held["muted"] == f"silenced:{silence['id']}" and not held["notified"]
        assert held["events"][0]["muted"] == f"silenced:{silence['id']}"
        assert held["events"][0]["notifications"] == []

        listed = api.get("/projects/quiet/silences").json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]
        expired = api.delete(f"/projects/quiet/silences/{silence['id']}").json()
        assert expired["active"] is False
        assert api.get("/projects/quiet/silences").json()["silences"] == []
        assert len(api.get("/projects/quiet/silences", params={"include_expired": True}).json()["silences"]) == 1

        # The next step after the silence ends sends the firing message that was held back.
        send_steps(api, muted, steps_of({"loss": [10.0, 1.0]}, start=2))
        rx.wait_for(3)
    assert _messages(rx) == [("baseline", "loss_high", "firing", 0), ("exp-1", "loss_high", "firing", 2),
                             ("exp-1", "loss_high", "resolved", 3)]
    assert _alert(api, muted, "loss_high")["notified"] is True


def test_a_critical_alert_inhibits_warnings_of_its_own_run_only(alert_api):
    api = alert_api
    with Receiver() as rx:
        add_webhook(api, "inh", rx.url, new_secret())
        api.put("/projects/inh/rules/loss_high", json={"metric": "loss", "condition": "> 5"})
        broken, other = new_run(api, "inh", "broken"), new_run(api, "inh", "other")
        # Step 0 of `broken`: a NaN advantage (critical, fires at once) and a high loss (warning).
        send_steps(api, broken, steps_of({"loss": [10.0], "adv/mean": [float("nan")]}))
        send_steps(api, other, steps_of({"loss": [10.0]}))
        rx.wait_for(2)
        warning = _alert(api, broken, "loss_high")
        assert warning["state"] == "firing" and warning["muted"] == "inhibited"
        # Finite again: nonfinite resolves after its hold (keep_firing_steps 20), which frees the warning.
        send_steps(api, broken, steps_of({"loss": [10.0] * 21, "adv/mean": [0.0] * 21}, start=1))
        rx.wait_for(4)
        time.sleep(0.2)
    assert sorted(_messages(rx)[:2]) == [("broken", "nonfinite", "firing", 0), ("other", "loss_high", "firing", 0)]
    assert _messages(rx)[2:] == [("broken", "nonfinite", "resolved", 21), ("broken", "loss_high", "firing", 21)]
    critical = next(m for m in rx.unique() if m.json["data"]["alert"]["rule"] == "nonfinite").json["data"]
    assert critical["alert"]["severity"] == "critical" and critical["values"] == {"nonfinite": ["adv/mean"]}
