"""The alerting API: rules with their sources, channels with write-only secrets and refused private
targets, silences, token scopes, OpenAPI, and 4xx (never 5xx) on bad input. SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.support.alerting import new_run, new_secret, send_steps, steps_of
from tests.support.tokens import create_token

HOOK = "https://hooks.example.com/fadewatch"  # never contacted: creation checks a literal public address
PUBLIC = "http://93.184.216.34/in?token=s3cr3t-query"


def _client(server, secret: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30)


def test_rules_list_defaults_and_overrides_with_their_source(api):
    rules = api.get("/projects/p/rules").json()["rules"]
    assert {r["name"] for r in rules} == {"nonfinite", "entropy_collapse", "entropy_early_warning", "sign_imbalance",
                                          "heavy_tails", "no_signal", "diversity_collapse", "geometry_collapse"}
    assert all(r["source"] == "default" and r["enabled"] for r in rules)
    collapse = api.get("/projects/p/rules/entropy_collapse").json()
    assert collapse["severity"] == "critical" and collapse["params"]["fraction"] == 0.3

    r = api.post("/projects/p/rules", json={"name": "kl_high", "metric": "kl", "condition": ">= 0.2",
                                            "for_steps": 3, "labels": {"team": "rl"}})
    assert r.status_code == 201 and r.json()["op"] == ">=" and r.json()["value"] == 0.2
    assert api.post("/projects/p/rules", json={"name": "kl_high", "metric": "kl", "op": ">", "value": 1}).status_code == 409
    r = api.put("/projects/p/rules/kl_high", json={"metric": "kl", "op": ">", "value": 1.0, "severity": "critical"})
    assert r.status_code == 200 and r.json()["severity"] == "critical" and r.json()["labels"] == {}

    r = api.patch("/projects/p/rules/sign_imbalance", json={"params": {"bound": 0.7}, "for_steps": 20})
    assert r.status_code == 200
    assert r.json() | {} == r.json() and r.json()["source"] == "api" and r.json()["overrides"] == "default"
    params = r.json()["params"]
    assert params["metric"] == "sign/balance" and params["bound"] == 0.7 and r.json()["for_steps"] == 20
    assert params["clear_bound"] == 0.3, "params left out of a patch keep their defaults"

    assert api.post("/projects/p/rules/heavy_tails/disable").json()["enabled"] is False
    assert api.get("/projects/p/rules/heavy_tails").json()["source"] == "api"
    assert api.post("/projects/p/rules/heavy_tails/enable").json()["enabled"] is True

    assert api.delete("/projects/p/rules/sign_imbalance").status_code == 204
    back = api.get("/projects/p/rules/sign_imbalance").json()
    assert back["source"] == "default" and back["params"]["bound"] == 0.5
    refused = api.delete("/projects/p/rules/entropy_collapse")
    assert refused.status_code == 409 and "disable" in refused.json()["detail"]
    assert api.delete("/projects/p/rules/kl_high").status_code == 204
    assert api.get("/projects/p/rules/kl_high").status_code == 404
    # Rules belong to their project.
    assert api.get("/projects/elsewhere/rules/heavy_tails").json()["source"] == "default"


def test_disabling_a_rule_resolves_its_firing_alerts(api):
    run = new_run(api, "dis", "r")
    send_steps(api, run, steps_of({"adv/mean": [float("nan")]}))
    assert api.get("/alerts", params={"run_id": run}).json()["alerts"][0]["state"] == "firing"
    api.post("/projects/dis/rules/nonfinite/disable")
    send_steps(api, run, steps_of({"adv/mean": [float("nan")]}, start=1))
    (alert,) = api.get("/alerts", params={"run_id": run}).json()["alerts"]
    assert alert["state"] == "resolved" and alert["summary"] == "the rule was removed or disabled"


def test_channels_never_return_secrets_and_mask_urls(api, server):
    secret = new_secret()
    created = api.post("/projects/c/channels", json={"name": "ops", "kind": "webhook", "url": PUBLIC, "secret": secret})
    assert created.status_code == 201, created.text
    slack = api.post("/projects/c/channels", json={"name": "team", "kind": "slack",
                                                   "url": "https://93.184.216.34/services/T0/B0/xoxb-slack-token"})
    assert slack.status_code == 201, slack.text
    hook_id = created.json()["id"]
    assert created.json()["url"] == "http://93.184.216.34/in?token=***" and created.json()["has_secret"] is True
    assert slack.json()["url"] == "https://93.184.216.34/services/***" and slack.json()["has_secret"] is False

    rotated = new_secret()
    patched = api.patch(f"/projects/c/channels/{hook_id}", json={"secret": rotated, "enabled": False, "name": "ops2"})
    assert patched.status_code == 200 and patched.json()["enabled"] is False and patched.json()["name"] == "ops2"
    seen = [created.text, slack.text, patched.text, api.get("/projects/c/channels").text,
            api.get(f"/projects/c/channels/{hook_id}").text, httpx.get(f"{server.url}/api/v1/openapi.json").text]
    for text in seen:
        for hidden in (secret, rotated, secret.removeprefix("whsec_"), "xoxb-slack-token", "s3cr3t-query"):
            assert hidden not in text
    assert api.delete(f"/projects/c/channels/{hook_id}").status_code == 204
    assert [c["name"] for c in api.get("/projects/c/channels").json()["channels"]] == ["team"]
    assert api.get(f"/projects/c/channels/{hook_id}").status_code == 404


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
    "http://192.168.0.10/hook", "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/hook", "http://[64:ff9b::a00:1]/hook", "http://100.64.0.1/",
])
def test_private_and_loopback_targets_are_refused_by_default(api, url):
    r = api.post("/projects/s/channels", json={"name": "x", "kind": "webhook", "url": url, "secret": new_secret()})
    assert r.status_code == 422
    assert "refused" in r.json()["detail"] and "FADEWATCH_ALERT_ALLOW_" in r.json()["detail"]


def test_read_tokens_read_alerting_and_other_projects_are_closed(server, db_url):
    write, read, other = create_token(db_url, "a"), create_token(db_url, "a", "read"), create_token(db_url, "b")
    with _client(server, write) as w, _client(server, read) as r, _client(server, other) as o:
        run = new_run(w, "a", "r")
        send_steps(w, run, steps_of({"adv/mean": [float("inf")]}))
        (alert,) = w.get("/alerts").json()["alerts"]
        assert r.get("/alerts", params={"project": "a"}).json()["total"] == 1
        assert r.get(f"/alerts/{alert['id']}").status_code == 200
        assert r.get("/projects/a/rules").status_code == 200
        assert r.get("/projects/a/channels").status_code == 200
        assert r.get("/projects/a/silences").status_code == 200
        body = {"matchers": [{"name": "rule", "value": "x"}], "duration_s": 60}
        for call in (lambda c: c.put("/projects/a/rules/x", json={"metric": "m", "condition": "> 1"}),
                     lambda c: c.post("/projects/a/rules/heavy_tails/disable"),
                     lambda c: c.post("/projects/a/silences", json=body),
                     lambda c: c.post("/projects/a/channels", json={"name": "n", "kind": "slack", "url": HOOK})):
            assert call(r).status_code == 403
            assert call(o).status_code == 403
        assert w.post("/projects/a/silences", json=body).status_code == 201
        assert o.get("/alerts").json() == {"alerts": [], "total": 0}
        assert o.get("/alerts", params={"project": "a"}).status_code == 403
        assert o.get(f"/alerts/{alert['id']}").status_code == 404
        assert o.get("/projects/a/rules").status_code == 403


def test_bad_input_gets_a_clear_4xx(api):
    secret = new_secret()
    assert api.post("/projects/v/channels", json={"name": "ok", "kind": "webhook", "url": HOOK,
                                                  "secret": secret}).status_code == 201
    cases = [
        ("put", "/projects/v/rules/bad name!", {"metric": "m", "condition": "> 1"}, 422),
        ("put", "/projects/%20/rules/r", {"metric": "m", "condition": "> 1"}, 422),
        ("post", "/projects/a%01b/silences", {"matchers": [{"name": "rule", "value": "x"}], "duration_s": 60}, 422),
        ("put", "/projects/v/rules/r", {"metric": "m", "condition": "bigger than 1"}, 422),
        ("put", "/projects/v/rules/r", {"metric": "m"}, 422),
        ("put", "/projects/v/rules/r", {"detector": "astrology"}, 422),
        ("put", "/projects/v/rules/r", {"detector": "no_signal", "params": {"bound": 2}}, 422),
        ("put", "/projects/v/rules/r", {"detector": "no_signal", "params": {"colour": 1}}, 422),
        ("put", "/projects/v/rules/r", {"detector": "no_signal", "metric": "x"}, 422),
        ("put", "/projects/v/rules/r", {"metric": "m", "condition": "> 1", "labels": {"run": "x"}}, 422),
        ("put", "/projects/v/rules/r", {"metric": "m", "condition": "> 1", "for_steps": 0}, 422),
        ("put", "/projects/v/rules/r", {"metric": "m", "op": ">", "value": "NaN"}, 422),
        ("post", "/projects/v/rules", {"metric": "m", "condition": "> 1"}, 422),
        ("patch", "/projects/v/rules/no_signal", {"params": {"bound": -1}}, 422),
        ("patch", "/projects/v/rules/missing", {"enabled": False}, 404),
        ("post", "/projects/v/channels", {"name": "e", "kind": "email", "url": HOOK}, 422),
        ("post", "/projects/v/channels", {"name": "f", "kind": "webhook", "url": "ftp://x/y", "secret": secret}, 422),
        ("post", "/projects/v/channels", {"name": "g", "kind": "webhook", "url": "http://u:p@93.184.216.34/",
                                          "secret": secret}, 422),
        ("post", "/projects/v/channels", {"name": "h", "kind": "webhook", "url": HOOK, "secret": "not base64!"}, 422),
        ("post", "/projects/v/channels", {"name": "i", "kind": "webhook", "url": HOOK, "secret": "whsec_c2hvcnQ="}, 422),
        ("post", "/projects/v/channels", {"name": "j", "kind": "webhook", "url": HOOK}, 422),
        ("post", "/projects/v/channels", {"name": "k", "kind": "slack", "url": HOOK, "secret": secret}, 422),
        ("post", "/projects/v/channels", {"name": "ok", "kind": "webhook", "url": HOOK, "secret": secret}, 409),
        ("patch", "/projects/v/channels/1", {"secret": None}, 422),
        ("patch", "/projects/v/channels/1", {"url": "http://127.0.0.1/"}, 422),
        ("patch", "/projects/v/channels/99", {"enabled": False}, 404),
        ("get", "/projects/v/channels/0", None, 422),
        ("get", f"/projects/v/channels/{2**40}", None, 422),
        ("post", "/projects/v/silences", {"matchers": [], "duration_s": 60}, 422),
        ("post", "/projects/v/silences", {"matchers": [{"name": "rule", "value": "x"}]}, 422),
        ("post", "/projects/v/silences", {"matchers": [{"name": "rule", "value": "x"}], "duration_s": 5,
                                          "ends_at": "2030-01-01T00:00:00Z"}, 422),
        ("post", "/projects/v/silences", {"matchers": [{"name": "rule", "value": "x"}],
                                          "ends_at": "2001-01-01T00:00:00Z"}, 422),
        ("post", "/projects/v/silences", {"matchers": [{"name": "rule", "op": "=~", "value": "x"}],
                                          "duration_s": 60}, 422),
        ("post", "/projects/v/silences", {"matchers": [{"name": "bad label", "value": "x"}], "duration_s": 60}, 422),
        ("delete", "/projects/v/silences/7", None, 404),
        ("get", "/alerts?state=bogus", None, 422),
        ("get", "/alerts?run_id=0", None, 422),
        ("get", "/alerts?limit=0", None, 422),
        ("get", f"/alerts/{2**40}", None, 422),
        ("get", "/alerts/12345", None, 404),
        ("get", "/projects/nowhere/channels", None, 404),
    ]
    for method, path, body, status in cases:
        r = api.request(method, path, json=body) if body is not None else api.request(method, path)
        assert r.status_code == status, (method, path, body, r.status_code, r.text)
        assert r.json()["detail"], (method, path)


def test_openapi_documents_the_alerting_routes(server):
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/api/v1/alerts", "get"), ("/api/v1/alerts/{alert_id}", "get"),
                         ("/api/v1/projects/{project}/rules", "get"), ("/api/v1/projects/{project}/rules", "post"),
                         ("/api/v1/projects/{project}/rules/{name}", "put"),
                         ("/api/v1/projects/{project}/rules/{name}", "patch"),
                         ("/api/v1/projects/{project}/rules/{name}", "delete"),
                         ("/api/v1/projects/{project}/rules/{name}/disable", "post"),
                         ("/api/v1/projects/{project}/channels", "post"),
                         ("/api/v1/projects/{project}/channels/{channel_id}", "patch"),
                         ("/api/v1/projects/{project}/channels/{channel_id}/test", "post"),
                         ("/api/v1/projects/{project}/silences", "post"),
                         ("/api/v1/projects/{project}/silences/{silence_id}", "delete")]:
        assert method in paths.get(path, {}), (path, method)
    schemas = spec["components"]["schemas"]
    assert "secret" not in schemas["ChannelOut"]["properties"]
    assert "secret" in schemas["ChannelIn"]["properties"]
    assert {"alerts", "total"} <= set(schemas["AlertList"]["properties"])


def test_alerts_filter_and_page_latest_transition_first(api):
    api.put("/projects/f/rules/loss_high", json={"metric": "loss", "condition": "> 5"})
    r1, r2 = new_run(api, "f", "one"), new_run(api, "f", "two")
    send_steps(api, r1, steps_of({"loss": [10.0]}))                                   # fires
    send_steps(api, r2, steps_of({"loss": [10.0], "adv/mean": [float("nan")]}))      # two fire
    send_steps(api, r1, steps_of({"loss": [1.0]}, start=1))                           # resolves
    listed = api.get("/alerts", params={"project": "f"}).json()
    assert listed["total"] == 3
    assert [(a["run_name"], a["rule"], a["state"]) for a in listed["alerts"]] == [
        ("one", "loss_high", "resolved"), ("two", "loss_high", "firing"), ("two", "nonfinite", "firing")]
    two_firing = [a for a in listed["alerts"] if a["run_name"] == "two"]
    assert {a["muted"] for a in two_firing} == {"inhibited", None}

    def names(**params):
        body = api.get("/alerts", params={"project": "f", **params}).json()
        return body["total"], [(a["run_name"], a["rule"]) for a in body["alerts"]]

    assert names(state="firing") == (2, [("two", "loss_high"), ("two", "nonfinite")])
    assert names(state=["firing", "resolved"])[0] == 3
    assert names(severity="critical") == (1, [("two", "nonfinite")])
    assert names(rule="loss_high")[0] == 2 and names(run_id=r1) == (1, [("one", "loss_high")])
    assert names(limit=1, offset=1) == (3, [("two", "loss_high")])
    assert api.get("/alerts", params={"project": "nobody"}).json() == {"alerts": [], "total": 0}
