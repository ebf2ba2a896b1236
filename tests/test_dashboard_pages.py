"""The runs and compare pages, the empty state, the theme switch and user text shown as text."""

from __future__ import annotations

import httpx
import pytest

from fadewatch.dashboard.figures.theme import run_color
from tests.support.browser import start_dashboard_server
from tests.support.dashboard import graph_data, make_run, post_steps, series_id, step_record, wait_for_graph

XSS = "<img src=x onerror=alert(1)>"
XSS_FLAG = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"


@pytest.fixture
def api(dashboard_server):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1", timeout=30) as client:
        yield client


def test_empty_server_says_what_to_do_then_lists_a_new_run_live(page, tmp_path):
    server = start_dashboard_server(tmp_path)
    try:
        page.goto(server.url)
        page.wait_for_selector("text=No runs yet: run")
        assert "fadewatch demo" in page.inner_text("#runs-table")
        page.evaluate("window.__same_page = true")
        with httpx.Client(base_url=f"{server.url}/api/v1") as api:
            run_id = make_run(api, "first-run", project="fresh")
            post_steps(api, run_id, [step_record(s) for s in range(5)])
        page.wait_for_selector("#runs-table-el >> text=first-run")
        row = page.inner_text(f"[id='{{\"run\":{run_id},\"type\":\"runs-row\"}}']")
        assert "fresh" in row and "running" in row and "0.24" in row  # reward/mean of step 4
        assert page.evaluate("window.__same_page") is True
    finally:
        server.stop()


def test_runs_page_filters_by_project_and_links_to_run_and_compare(page, api, dashboard_server):
    a = make_run(api, "filter-a", project="proj-one")
    b = make_run(api, "filter-b", project="proj-two")
    for run_id in (a, b):
        post_steps(api, run_id, [step_record(s) for s in range(3)])
    page.goto(dashboard_server.url)
    page.wait_for_selector("#runs-table-el >> text=filter-b")
    # The server filters: a search keeps the matching runs only, and says how many match.
    page.fill("#runs-search", "filter-b")
    page.press("#runs-search", "Enter")
    page.wait_for_function("() => !document.getElementById('runs-table').innerText.includes('filter-a')")
    assert "filter-b" in page.inner_text("#runs-table") and "1–1 of 1 runs" in page.inner_text("#runs-range")
    page.fill("#runs-search", "")
    page.press("#runs-search", "Enter")
    page.wait_for_selector("#runs-table-el >> text=filter-a")
    page.click("#runs-project")
    page.click("text=proj-one")
    page.wait_for_function("() => !document.getElementById('runs-table').innerText.includes('filter-b')")
    assert "filter-a" in page.inner_text("#runs-table")
    page.click("#runs-table-el >> text=filter-a")
    page.wait_for_url(f"**/runs/{a}")
    page.wait_for_selector("#run-name >> text=filter-a")


def test_compare_overlays_runs_by_step_in_their_own_colours(page, api, dashboard_server):
    first = make_run(api, "compare-a")
    second = make_run(api, "compare-b")
    post_steps(api, first, [step_record(s) for s in range(15)])
    post_steps(api, second, [step_record(s, **{"reward/mean": 1.0 - s / 100}) for s in range(10)])
    page.goto(f"{dashboard_server.url}/compare?runs={first},{second}&metrics=reward/mean")
    graph = '{"metric":"reward/mean","type":"compare-graph"}'
    wait_for_graph(page, graph, "g.data.length === 2 && g.data[1].x.length === 10")
    a, b = graph_data(page, graph)["data"]
    assert a["name"] == f"compare-a (#{first})" and a["color"] == run_color(first)
    assert b["name"] == f"compare-b (#{second})" and b["color"] == run_color(second)
    assert a["x"] == list(range(15)) and b["y"] == pytest.approx([1.0 - s / 100 for s in range(10)])
    post_steps(api, second, [step_record(s, **{"reward/mean": 0.5}) for s in range(10, 13)])
    wait_for_graph(page, graph, "g.data[1].x.length === 13")


def test_theme_switch_recolours_the_page_and_is_remembered(page, api, dashboard_server):
    page.goto(dashboard_server.url)
    page.wait_for_selector("#fw-root.theme-dark")
    dark = page.evaluate("getComputedStyle(document.getElementById('fw-root')).backgroundColor")
    page.click("#fw-theme-toggle")
    page.wait_for_selector("#fw-root.theme-light")
    light = page.evaluate("getComputedStyle(document.getElementById('fw-root')).backgroundColor")
    assert dark != light
    page.reload()
    page.wait_for_selector("#fw-root.theme-light")


def test_user_text_is_shown_as_text_and_never_runs(page, api, dashboard_server):
    run_id = make_run(api, XSS, project=XSS_FLAG, config={"note": XSS_FLAG, "nested": {XSS: [XSS]}})
    records = [step_record(s) for s in range(5)]
    records[-1]["samples"] = [{"text": XSS_FLAG, "group": XSS, "reward": 0.0, "advantage": -1.0}]
    post_steps(api, run_id, records)
    other = make_run(api, "plain-run")
    post_steps(api, other, [step_record(s) for s in range(5)])

    def nothing_ran():
        assert page.dialogs == []
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src='x']").count() == 0

    page.goto(dashboard_server.url)
    page.wait_for_selector(f"#runs-table-el >> text={XSS}")
    assert XSS_FLAG in page.inner_text("#runs-table")
    nothing_ran()
    page.goto(f"{dashboard_server.url}/runs/{run_id}")
    page.wait_for_selector(f"#run-name >> text={XSS}")
    wait_for_graph(page, series_id("reward"), "g.data.some(t => t.x.length === 5)")
    page.locator("#run-rollouts").scroll_into_view_if_needed()  # the section loads once scrolled to
    page.wait_for_selector("#run-rollouts >> text=window.__xss=2")
    config_text = page.inner_text("#run-config")
    assert XSS in config_text and "<script>window.__xss=2</script>" in config_text
    nothing_ran()
    page.goto(f"{dashboard_server.url}/compare?runs={run_id},{other}&metrics=reward/mean")
    graph = '{"metric":"reward/mean","type":"compare-graph"}'
    wait_for_graph(page, graph, "g.data.length === 2")
    # Plotly labels read some HTML-like tags: the name must come through escaped, shown literally.
    assert page.locator(f"[id='{graph}'] .legendtext").first.text_content() == f"{XSS} (#{run_id})"
    nothing_ran()
    page.goto(f"{dashboard_server.url}/alerts?project=" + httpx.URL("", params={"p": XSS_FLAG}).query.decode()[2:])
    page.wait_for_selector("#alerts-list")
    nothing_ran()


def test_dashboard_alone_reads_a_remote_server(page, api, dashboard_server):
    from fadewatch.dashboard.mount import dashboard_asgi
    from tests.support.servers import ThreadedServer

    run_id = make_run(api, "remote-run", project="remote")
    post_steps(api, run_id, [step_record(s) for s in range(8)])
    alone = ThreadedServer(dashboard_asgi(api_url=dashboard_server.url, refresh_seconds=0.5)).start()
    try:
        page.goto(f"{alone.url}/runs/{run_id}")
        wait_for_graph(page, series_id("reward"), "g.data.some(t => t.name === 'mean' && t.x.length === 8)")
        assert page.inner_text("#run-name") == "remote-run"
    finally:
        alone.stop()
