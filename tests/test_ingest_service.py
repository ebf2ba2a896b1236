"""The ingest service owns the transaction: alert evaluation runs in a savepoint, so whatever
fails there (a detector's Python, or an SQL statement that would abort a PostgreSQL
transaction) costs no stored step. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import text

from fadewatch.server.alerts.evaluation import engine
from tests.support.records import batch


def _failures(api) -> float:
    body = api.get("/metrics").text
    found = re.search(r"^fadewatch_alert_evaluation_failures_total (\S+)$", body, re.M)
    return float(found.group(1)) if found else 0.0


def _broken_detector(*_args, **_kwargs):
    raise ZeroDivisionError("a detector bug")


def _failing_sql(session, run_id):
    # On PostgreSQL an error aborts the transaction it happens in: without the savepoint,
    # the batch's steps would be lost with it and the client would retry forever.
    session.execute(text("SELECT no_such_column FROM runs"))


@pytest.mark.parametrize("breakage", ["python", "sql"])
def test_alert_failure_costs_no_step_and_is_counted_and_logged_once(server, api, monkeypatch, caplog, breakage):
    if breakage == "python":
        monkeypatch.setattr(engine, "advance", _broken_detector)
    else:
        monkeypatch.setattr(engine.store, "load_tracks", _failing_sql)
    run_id = api.post("/runs", json={"project": "p", "name": "r"}).json()["id"]
    before = _failures(api)
    caplog.set_level(logging.ERROR, logger="fadewatch.server.ingest")

    for steps in (range(0, 10), range(10, 20)):
        r = api.post(f"/runs/{run_id}/steps", json=batch(steps))
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 10

    run = api.get(f"/runs/{run_id}").json()
    assert run["step_count"] == 20 and run["last_step"] == 19
    series = api.get(f"/runs/{run_id}/series", params={"keys": "loss"}).json()["series"]["loss"]
    assert series["steps"] == list(range(20))
    assert _failures(api) == before + 2
    logged = [r for r in caplog.records if r.name == "fadewatch.server.ingest"]
    assert len(logged) == 1 and f"run {run_id}" in logged[0].getMessage()
    # A retry of a stored batch is a duplicate, not a second failure: nothing is re-evaluated.
    assert api.post(f"/runs/{run_id}/steps", json=batch(range(10))).json()["duplicates"] == 10
    assert _failures(api) == before + 2


def test_alerts_still_work_after_a_failed_batch(server, api, monkeypatch):
    """The savepoint rolls back the alert writes of the failed batch alone."""
    run_id = api.post("/runs", json={"project": "p", "name": "r"}).json()["id"]
    monkeypatch.setattr(engine, "advance", _broken_detector)
    assert api.post(f"/runs/{run_id}/steps", json=batch(range(5))).status_code == 200
    monkeypatch.undo()
    nan = batch(range(5, 8))
    for rec in nan["records"]:
        rec["scalars"]["loss"] = None
        rec["nonfinite"] = ["loss"]
    assert api.post(f"/runs/{run_id}/steps", json=nan).status_code == 200
    alerts = api.get("/alerts", params={"run_id": run_id}).json()["alerts"]
    assert [a["rule"] for a in alerts if a["state"] == "firing"] == ["nonfinite"]
