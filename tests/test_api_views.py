"""The derived views the dashboard draws, computed by the server: runs with their alerts, the
projects list, a run's alert markers in one request, summed histograms, the forecast read from
the early-warning rule's own state and the regimes from the sign rule's, and each alert's
episodes. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.alerting import new_run, steps_of
from tests.support.records import batch, histogram


def _threshold(api, project: str, name: str, metric: str = "loss", value: float = 10.0) -> None:
    rule = {"detector": "threshold", "metric": metric, "op": ">", "value": value, "severity": "critical"}
    assert api.put(f"/projects/{project}/rules/{name}", json=rule).status_code in (200, 201)


def _post(api, run_id: int, records: list[dict]) -> None:
    r = api.post(f"/runs/{run_id}/steps", json={"records": records})
    assert r.status_code == 200, r.text


def test_runs_carry_their_firing_count_and_newest_alert(api):
    quiet = new_run(api, "views", "quiet")
    loud = new_run(api, "views", "loud")
    _threshold(api, "views", "loss_high")
    _threshold(api, "views", "loss_very_high", value=100.0)
    _post(api, quiet, steps_of({"loss": [1.0, 2.0]}))
    _post(api, loud, steps_of({"loss": [1.0, 500.0, 600.0]}))

    runs = {r["name"]: r for r in api.get("/runs").json()["runs"]}
    assert runs["quiet"]["alerts_firing"] == 0 and runs["quiet"]["latest_alert"] is None
    assert runs["loud"]["alerts_firing"] == 2
    assert runs["loud"]["latest_alert"]["rule"] in ("loss_high", "loss_very_high")
    assert runs["loud"]["latest_alert"]["state"] == "firing" and runs["loud"]["latest_alert"]["step"] == 1
    one = api.get(f"/runs/{loud}").json()
    assert one["alerts_firing"] == 2 and one["latest_alert"] == runs["loud"]["latest_alert"]

    by_alerts = api.get("/runs", params={"sort": "alerts_firing"}).json()["runs"]
    assert [r["name"] for r in by_alerts][:2] == ["loud", "quiet"]


def test_runs_are_filtered_sorted_and_paged_by_the_server(api):
    for name in ("alpha-1", "alpha-2", "beta-1"):
        new_run(api, "filters", name)
    other = new_run(api, "elsewhere", "alpha-3")
    assert api.patch(f"/runs/{other}", json={"status": "failed"}).status_code == 200

    def names(**params):
        body = api.get("/runs", params=params).json()
        return [r["name"] for r in body["runs"]], body["total"]

    assert names(q="ALPHA", sort="name", order="asc") == (["alpha-1", "alpha-2", "alpha-3"], 3)
    assert names(q="alpha", project="filters", sort="name", order="asc") == (["alpha-1", "alpha-2"], 2)
    assert names(status=["failed"]) == (["alpha-3"], 1)
    assert names(status=["failed", "running"], sort="name", order="desc", limit=2) == (["beta-1", "alpha-3"], 4)
    assert names(sort="name", order="asc", limit=2, offset=2) == (["alpha-3", "beta-1"], 4)
    assert names(q="%") == ([], 0)  # wildcards in the text are taken literally
    assert api.get("/runs", params={"sort": "colour"}).status_code == 422


def test_projects_list_counts_runs(api):
    new_run(api, "p-one", "a")
    finished = new_run(api, "p-one", "b")
    api.patch(f"/runs/{finished}", json={"status": "finished"})
    new_run(api, "p-two", "c")
    projects = {p["name"]: p for p in api.get("/projects").json()["projects"]}
    assert projects["p-one"]["runs"] == 2 and projects["p-one"]["running"] == 1
    assert projects["p-two"]["runs"] == 1 and projects["p-two"]["last_activity"] is not None


def test_a_runs_alert_markers_come_in_one_request(api):
    run_id = new_run(api, "markers", "r")
    _threshold(api, "markers", "loss_high")
    _post(api, run_id, steps_of({"loss": [1.0, 50.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 60.0]}))

    markers = api.get(f"/runs/{run_id}/alert-markers").json()["markers"]
    firing = [(m["step"], m["rule"], m["kind"]) for m in markers if m["rule"] == "loss_high"]
    assert firing == [(1, "loss_high", "firing"), (8, "loss_high", "firing")]
    both = api.get(f"/runs/{run_id}/alert-markers", params={"kind": ["firing", "resolved"]}).json()["markers"]
    assert [m["kind"] for m in both if m["rule"] == "loss_high"] == ["firing", "resolved", "firing"]
    newest = max(m["event_id"] for m in markers)
    assert api.get(f"/runs/{run_id}/alert-markers", params={"after_event": newest}).json()["markers"] == []
    assert [m["step"] for m in api.get(f"/runs/{run_id}/alert-markers",
                                       params={"min_step": 5}).json()["markers"]] == [8]
    assert api.get("/runs/999999/alert-markers").status_code == 404


def test_several_histograms_are_added_step_by_step(api):
    run_id = new_run(api, "hist", "r")
    records = batch(range(6), histograms=0)["records"]
    for rec in records:
        rec["histograms"] = {"mass/pos": histogram(seed=rec["step"]), "mass/neg": histogram(seed=rec["step"] + 1)}
    _post(api, run_id, records)
    pos = api.get(f"/runs/{run_id}/histograms", params={"name": "mass/pos"}).json()
    neg = api.get(f"/runs/{run_id}/histograms", params={"name": "mass/neg"}).json()
    both = api.get(f"/runs/{run_id}/histograms", params={"name": "mass/pos,mass/neg"}).json()
    assert both["steps"] == pos["steps"] == list(range(6))
    assert both["counts"] == [[a + b for a, b in zip(x, y)] for x, y in zip(pos["counts"], neg["counts"])]
    assert both["count"] == [a + b for a, b in zip(pos["count"], neg["count"])]
    merged = api.get(f"/runs/{run_id}/histograms", params={"name": "mass/pos,mass/neg", "max_steps": 2}).json()
    assert [sum(map(sum, merged["counts"]))] == [sum(map(sum, both["counts"]))]
    assert api.get(f"/runs/{run_id}/histograms", params={"name": ","}).status_code == 422


def _falling_entropy(n: int, start: float = 2.0, end: float = 0.9) -> list[float]:
    return [start - (start - end) * i / (n - 1) for i in range(n)]


def test_the_forecast_is_the_early_warning_rules_own_state(api):
    run_id = new_run(api, "forecast", "r")
    empty = api.get(f"/runs/{run_id}/forecast").json()
    assert empty["rule"] == "entropy_early_warning" and empty["step"] is None and empty["firing"] is False

    _post(api, run_id, steps_of({"entropy/mean": _falling_entropy(80)}))
    f = api.get(f"/runs/{run_id}/forecast").json()
    assert f["metric"] == "entropy/mean" and f["step"] == 79
    assert abs(f["baseline"] - sum(_falling_entropy(80)[:10]) / 10) < 1e-9
    assert abs(f["collapse_level"] - 0.3 * f["baseline"]) < 1e-9
    assert f["slope"] < 0 and f["projected_step"] > 79 and "trend" in f["signals"]
    # The interval of the forecast model: the earliest and latest steps the level is met at.
    assert f["early_step"] <= f["projected_step"] <= f["late_step"]
    alert = next(a for a in api.get("/alerts", params={"run_id": run_id}).json()["alerts"]
                 if a["rule"] == "entropy_early_warning")
    assert f["firing"] is (alert["state"] == "firing")
    assert alert["values"]["collapse_level"] == f["collapse_level"]
    assert alert["values"]["projected_step"] == f["projected_step"] and alert["values"]["early_step"] == f["early_step"]

    # A project override of the rule moves the line with the alert: same rule, same state.
    patched = api.patch("/projects/forecast/rules/entropy_early_warning", json={"params": {"fraction": 0.5}})
    assert patched.status_code == 200, patched.text
    _post(api, run_id, steps_of({"entropy/mean": _falling_entropy(20, 0.9, 0.8)}, start=80))
    moved = api.get(f"/runs/{run_id}/forecast").json()
    assert moved["step"] == 99 and abs(moved["collapse_level"] - 0.5 * moved["baseline"]) < 1e-9


def test_the_regime_is_the_sign_rules_own_state(api):
    run_id = new_run(api, "regime", "r")
    empty = api.get(f"/runs/{run_id}/regime").json()
    assert empty["rule"] == "sign_imbalance" and empty["sign"] is None and empty["spans"] == []
    # Balanced for 30 steps, then all mass negative (as NSR): failure-heavy, with no head geometry logged.
    b = [0.0] * 30 + [-1.0] * 40
    _post(api, run_id, steps_of({"sign/balance": b, "difficulty/solve_rate": [0.1] * 70}))
    r = api.get(f"/runs/{run_id}/regime").json()
    assert r["step"] == 69 and r["sign"]["state"] == "failure-heavy" and r["sign"]["value"] < -0.5
    assert 30 < r["sign"]["since_step"] < 40 and r["difficulty"]["state"] == "hard"
    assert r["consequence"] is None and "no head geometry" in r["note"]
    assert [(s["sign"], s["end"] is None) for s in r["spans"]] == [("balanced", False), ("failure-heavy", True)]
    assert r["spans"][1]["start"] == r["sign"]["since_step"] == r["spans"][0]["end"]
    assert api.get("/alerts", params={"run_id": run_id, "rule": "sign_imbalance"}).json()["total"] == 0
    api.post("/projects/regime/rules/sign_imbalance/disable")
    assert api.get(f"/runs/{run_id}/regime").json()["rule"] is None
    assert api.get("/runs/999999/regime").status_code == 404


def test_each_episode_of_an_alert_with_its_first_firing_step(api):
    run_id = new_run(api, "episodes", "r")
    assert api.put("/projects/episodes/rules/loss_high", json={"metric": "loss", "condition": "> 5"}).status_code == 201
    _post(api, run_id, steps_of({"loss": [9.0, 9.0, 1.0, 1.0, 9.0, 9.0]}))
    (alert,) = api.get("/alerts", params={"run_id": run_id}).json()["alerts"]
    assert alert["state"] == "firing" and alert["episode"] == 2 and alert["step"] == 4
    detail = api.get(f"/alerts/{alert['id']}").json()
    assert [(e["number"], e["fired_step"], e["resolved_step"]) for e in detail["episodes"]] == [(1, 0, 2), (2, 4, None)]
    assert all(e["notified"] for e in detail["episodes"])
    # Each event says what held at its own step, though all four came in one batch.
    assert [(e["kind"], e["step"], e["values"]["loss"]) for e in detail["events"]] == [
        ("firing", 0, 9.0), ("resolved", 2, 1.0), ("firing", 4, 9.0)]
