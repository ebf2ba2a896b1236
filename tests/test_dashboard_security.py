"""Alert text shown as text; security headers on every HTML page, under which the dashboard
and the API docs still work (no Content-Security-Policy violation)."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from tests.support.dashboard import make_run, post_steps, series_id, step_record, wait_for_graph

XSS_FLAG = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"
# Set before any page script runs: every violation of the page's policy is kept.
CSP_LISTENER = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
SWAGGER_STUB = ("window.SwaggerUIBundle = cfg => { document.body.dataset.openapi = cfg.url; };"
                "SwaggerUIBundle.presets = {apis: 1}; SwaggerUIBundle.SwaggerUIStandalonePreset = 1;")


@pytest.fixture
def api(dashboard_server):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1", timeout=30) as client:
        yield client


def _assert_html_headers(headers) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in re.search(r"script-src[^;]*", headers["content-security-policy"]).group()


def test_alert_text_is_shown_as_text_under_a_policy_dash_works_with(page, api, dashboard_server):
    page.add_init_script(CSP_LISTENER)
    project = "xss-alerts"
    run_id = make_run(api, XSS_FLAG, project=project, config={"note": XSS_FLAG})
    rule = {"detector": "threshold", "metric": "loss", "op": ">", "value": 10, "severity": "critical",
            "description": XSS_FLAG, "labels": {"note": XSS_FLAG}}
    assert api.put(f"/projects/{project}/rules/xss_rule", json=rule).status_code in (200, 201)
    silence = {"matchers": [{"name": "rule", "value": "other"}], "duration_s": 3600, "comment": XSS_FLAG}
    assert api.post(f"/projects/{project}/silences", json=silence).status_code == 201
    post_steps(api, run_id, [step_record(s) for s in range(5)] + [step_record(5, loss=99.0)])

    def nothing_ran():
        assert page.dialogs == [] and page.evaluate("window.__xss") is None
        assert page.locator("img[src='x']").count() == 0
        assert page.evaluate("window.__csp") == []

    answer = page.goto(f"{dashboard_server.url}/alerts?project={project}")
    _assert_html_headers(answer.headers)
    row = page.locator("#alerts-table-el tr", has_text="xss_rule")
    row.wait_for()
    assert XSS_FLAG in row.inner_text()  # the run's name, literally
    (alert,) = api.get("/alerts", params={"project": project}).json()["alerts"]
    page.goto(f"{dashboard_server.url}/alerts?project={project}&alert={alert['id']}")
    page.wait_for_selector("#alerts-detail-card >> text=Events and delivery log")
    assert XSS_FLAG in page.inner_text("#alerts-detail-card")
    nothing_ran()
    page.click(".fw-tab >> text=Silences")
    page.wait_for_selector("text=window.__xss=2")
    nothing_ran()
    page.click(".fw-tab >> text=Rules")
    page.wait_for_selector("text=xss_rule")
    nothing_ran()

    # Every page still draws under its policy: a violation would be in window.__csp.
    for path in ("", f"runs/{run_id}", f"runs/{run_id}/rollouts", f"compare?runs={run_id}&metrics=reward/mean"):
        answer = page.goto(f"{dashboard_server.url}/{path}")
        _assert_html_headers(answer.headers)
        if path.endswith("/rollouts"):
            page.wait_for_selector(".fw-group-card >> text=answer of step 5")
        elif path.startswith("runs/"):
            wait_for_graph(page, series_id("reward"), "g.data.some(t => t.x.length === 6)")
        elif path.startswith("compare"):
            wait_for_graph(page, '{"metric":"reward/mean","type":"compare-graph"}', "g.data.length === 1")
        else:
            page.wait_for_selector("#runs-table-el >> text=window.__xss=2")
        nothing_ran()
    # And the policy is live: a script injected into the page is blocked and reported.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__xss = 3';"
                  " document.body.appendChild(s); }")
    page.wait_for_function("() => window.__csp.some(v => v.startsWith('script-src'))")
    assert page.evaluate("window.__xss") is None


def test_api_docs_page_has_headers_and_its_policy_lets_its_own_script_run(page, dashboard_server):
    page.add_init_script(CSP_LISTENER)
    docs = httpx.get(f"{dashboard_server.url}/api/v1/docs")
    _assert_html_headers(docs.headers)
    (inline,) = re.findall(rb"<script>(.*?)</script>", docs.content, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline).digest()).decode()
    assert f"'sha256-{digest}'" in docs.headers["content-security-policy"]
    api = httpx.get(f"{dashboard_server.url}/api/v1/runs")
    assert api.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in api.headers

    # The browser has no network: Swagger UI's CDN is stood in for by a stub that reports its config.
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.fulfill(
        status=200, content_type="text/css" if route.request.url.endswith(".css") else "application/javascript",
        body="" if route.request.url.endswith(".css") else SWAGGER_STUB))
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.fulfill(status=404, body=""))
    page.goto(f"{dashboard_server.url}/api/v1/docs")
    page.wait_for_function("() => document.body.dataset.openapi === '/api/v1/openapi.json'")
    assert page.evaluate("window.__csp") == []
