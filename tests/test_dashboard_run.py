"""The run page in a real browser: charts hold the posted steps, grow live, and mark alerts."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.support.dashboard import graph_data, make_run, post_steps, series_id, step_record, wait_for_graph


@pytest.fixture
def api(dashboard_server):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1", timeout=30) as client:
        yield client


def _line(graph: dict, name: str) -> dict:
    return next(t for t in graph["data"] if t["name"] == name)


def test_run_page_shows_posted_steps_and_new_ones_without_reload(page, api, dashboard_server):
    run_id = make_run(api, "live-run")
    post_steps(api, run_id, [step_record(s) for s in range(30)])

    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    reward = series_id("reward")
    wait_for_graph(page, reward, "g.data.some(t => t.name === 'mean' && t.x.length === 30)")
    line = _line(graph_data(page, reward), "mean")
    assert line["x"] == list(range(30))
    assert line["y"] == pytest.approx([0.2 + s / 100 for s in range(30)])
    entropy = _line(graph_data(page, series_id("entropy")), "mean token entropy")
    assert entropy["y"][-1] == pytest.approx(2.0 - 29 / 50)
    heat = graph_data(page, "run-adv-heatmap")
    assert next(t for t in heat["data"] if t["type"] == "heatmap")["x"] == list(range(30))
    page.wait_for_selector("#run-rollouts >> text=answer of step 29")
    assert "step 29" in page.inner_text("#run-meta")

    post_steps(api, run_id, [step_record(s) for s in range(30, 40)])
    wait_for_graph(page, reward, "g.data.some(t => t.name === 'mean' && t.x.length === 40)")
    line = _line(graph_data(page, reward), "mean")
    assert line["x"] == list(range(40)) and line["y"][-1] == pytest.approx(0.59)
    wait_for_graph(page, "run-adv-heatmap", "g.data.some(t => t.type === 'heatmap' && t.x.length === 40)")
    page.wait_for_selector("#run-rollouts >> text=answer of step 39")
    page.wait_for_function("() => document.getElementById('run-meta').innerText.includes('step 39')")
    assert page.evaluate("window.__same_page") is True
    other = graph_data(page, '{"key":"loss","type":"run-user"}')
    assert other["data"][-1]["y"][:3] == pytest.approx([1.0, 0.5, 1 / 3], rel=1e-4)


def test_the_first_screen_is_answered_before_the_rest_of_the_page_is_asked_for(page, api, dashboard_server):
    """The advantage section comes first; the scalar charts and the lower heatmaps are asked for only
    once it is in, and no scalar chart is drawn empty ("loading") before its data."""
    run_id = make_run(api, "two-waves")
    post_steps(api, run_id, [step_record(s) for s in range(12)])
    seen: list[tuple[str, str]] = []

    def outputs(request) -> str:
        return (request.post_data or "") if "_dash-update-component" in request.url else ""

    page.on("request", lambda r: seen.append(("asked", outputs(r))) if outputs(r) else None)
    page.on("response", lambda r: seen.append(("answered", outputs(r.request))) if outputs(r.request) else None)
    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    wait_for_graph(page, series_id("reward"), "g.data.some(t => t.name === 'mean' && t.x.length === 12)")
    wait_for_graph(page, "run-ent-heatmap", "g.annotations.some(a => a.includes('not logged yet'))")  # loaded

    def first(kind: str, part: str) -> int:
        return next(i for i, (k, body) in enumerate(seen) if k == kind and part in body)

    advantages_in = first("answered", "run-adv-heatmap.figure")
    for rest in ("run-series-state.data", "run-diff-heatmap.figure", "run-ent-heatmap.figure"):
        assert first("asked", rest) > advantages_in, rest
    assert page.locator(".fw-card.fw-pending").count() == 0  # every placeholder card gave way to its chart


def test_alert_fired_on_a_step_appears_as_a_marker_on_the_run_charts(page, api, dashboard_server):
    run_id = make_run(api, "alerting-run", project="dash-alerts")
    rule = {"detector": "threshold", "metric": "loss", "op": ">", "value": 10, "severity": "critical"}
    assert api.put("/projects/dash-alerts/rules/loss_exploded", json=rule).status_code in (200, 201)
    post_steps(api, run_id, [step_record(s) for s in range(20)])

    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    page.evaluate("window.__same_page = true")
    reward = series_id("reward")
    wait_for_graph(page, reward, "g.data.some(t => t.name === 'mean' && t.x.length === 20)")
    assert graph_data(page, reward)["data"][0]["x"] == []  # no alert yet

    post_steps(api, run_id, [step_record(20, loss=250.0), step_record(21)])
    for chart in (reward, series_id("entropy"), series_id("sign-balance"), "run-adv-heatmap"):
        wait_for_graph(page, chart, "g.data[0].name === 'alerts' && g.data[0].x.includes(20)")
    markers = graph_data(page, reward)["data"][0]
    assert markers["x"] == [20]
    assert page.evaluate("window.__same_page") is True


def test_entropy_chart_draws_the_servers_forecast_and_regime_and_the_runs_page_counts_the_alert(
        page, api, dashboard_server):
    run_id = make_run(api, "forecast-run", project="dash-forecast")
    # Entropy falls by 0.02 a step under success-heavy mass (b = 0.9); the forecast reads a window of
    # 50 steps after the 10 baseline steps.
    post_steps(api, run_id, [step_record(s, **{"sign/balance": 0.9}) for s in range(70)])
    forecast = api.get(f"/runs/{run_id}/forecast").json()
    assert forecast["projected_step"] is not None and forecast["firing"]
    regime = api.get(f"/runs/{run_id}/regime").json()
    assert regime["sign"]["state"] == "success-heavy"

    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    entropy = series_id("entropy")
    wait_for_graph(page, entropy, "g.data.some(t => t.name.startsWith('projected collapse'))")
    fig = graph_data(page, entropy)
    line = next(t for t in fig["data"] if t["name"].startswith("projected collapse"))
    assert line["x"] == [forecast["step"], forecast["projected_step"]]
    assert line["y"] == pytest.approx([forecast["fitted"], forecast["collapse_level"]])
    interval = next(t for t in fig["data"] if t["name"] == "interval")
    assert interval["x"] == [forecast["early_step"], forecast["late_step"]]
    # The regime, as the server holds it: the header's badge and a band behind the charts.
    assert page.inner_text("#run-regime-badge") == "success-heavy"
    (band,) = [s for s in fig["shapes"] if (s.get("name") or "").startswith("regime-success-heavy")]
    assert band["x0"] == regime["spans"][-1]["start"] and band["x1"] == 69

    page.goto(dashboard_server.url)
    row = f"[id='{{\"run\":{run_id},\"type\":\"runs-row\"}}']"
    page.wait_for_selector(row)
    firing = api.get(f"/runs/{run_id}").json()["alerts_firing"]
    assert firing >= 1 and page.inner_text(f"{row} .fw-badge.firing") == str(firing)


def test_csv_download_of_chosen_series_holds_every_step(api, dashboard_server):
    run_id = make_run(api, "csv-run")
    post_steps(api, run_id, [step_record(s) for s in range(25)])
    r = httpx.get(f"{dashboard_server.url}/export/runs/{run_id}.csv", params={"keys": "reward/mean,loss"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["step", "reward/mean", "loss"]
    assert [int(row[0]) for row in rows[1:]] == list(range(25))
    assert float(rows[-1][1]) == pytest.approx(0.44) and float(rows[1][2]) == 1.0
    assert httpx.get(f"{dashboard_server.url}/export/runs/999999.csv").status_code == 404


def test_a_failed_run_shows_what_ended_it(page, api, dashboard_server):
    run_id = make_run(api, "failing-run")
    post_steps(api, run_id, [step_record(s) for s in range(3)])
    api.patch(f"/runs/{run_id}", json={"status": "failed", "error": "ValueError: <b>reward</b> service went away"})
    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    page.wait_for_selector("#run-error")
    assert page.inner_text("#run-error") == "ValueError: <b>reward</b> service went away"  # as text
    assert "failed" in page.inner_text("#run-meta")
