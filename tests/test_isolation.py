"""Project isolation and token scope on every endpoint of the OpenAPI document.

The walk takes its list of operations from the server's own OpenAPI, so an endpoint added
later fails here until it says how it is called; then a token of another project gets
403 or 404 and none of the project's data, and a read token of the project itself cannot
change anything.
"""

from __future__ import annotations

import httpx

from tests.support.alerting import new_secret, steps_of
from tests.support.records import batch
from tests.support.tokens import create_token

PROJECT = "alpha"
PUBLIC_HOOK = "http://93.184.216.34/hook"
# Data of project alpha that no other project's token may ever see.
MARKERS = ("alpha-secret-run", "alpha-config-marker", "alpha-completion-marker", "alpha-hook-name",
           "alpha_rule", "alpha-silence-comment", "alpha_metric")
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
# Lists of what the caller may see: answered for every token, holding only its own project's data
# (compare leaves out the runs of other projects).
OWN_LISTS = {("GET", "/api/v1/projects"), ("GET", "/api/v1/compare")}


def _client(server, secret: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def _seed(c: httpx.Client) -> dict:
    """Project alpha with one of everything, each carrying a marker."""
    run = c.post("/api/v1/runs", json={"project": PROJECT, "name": "alpha-secret-run",
                                       "config": {"note": "alpha-config-marker"}}).json()["id"]
    records = batch([0, 1])["records"]
    records[1]["scalars"]["alpha_metric"] = 1.0
    records[1]["samples"] = [{"text": "alpha-completion-marker", "group": "g", "reward": 1.0, "advantage": 0.5}]
    assert c.post(f"/api/v1/runs/{run}/steps", json={"records": records}).status_code == 200
    rule = {"detector": "threshold", "metric": "alpha_metric", "op": ">", "value": 0.5}
    assert c.put(f"/api/v1/projects/{PROJECT}/rules/alpha_rule", json=rule).status_code in (200, 201)
    more = steps_of({"alpha_metric": [2.0, 3.0], "adv/mean": [float("inf"), float("inf")]}, start=2)
    assert c.post(f"/api/v1/runs/{run}/steps", json={"records": more}).status_code == 200
    alert = c.get("/api/v1/alerts", params={"project": PROJECT}).json()["alerts"][0]["id"]
    channel = c.post(f"/api/v1/projects/{PROJECT}/channels", json={
        "name": "alpha-hook-name", "kind": "webhook", "url": PUBLIC_HOOK, "secret": new_secret()}).json()["id"]
    silence = c.post(f"/api/v1/projects/{PROJECT}/silences", json={
        "matchers": [{"name": "rule", "value": "nothing"}], "duration_s": 3600,
        "comment": "alpha-silence-comment"}).json()["id"]
    return {"run_id": run, "alert_id": alert, "channel_id": channel, "silence_id": silence,
            "name": "alpha_rule", "project": PROJECT}


# How each operation is called on project alpha: query parameters and a body that is valid,
# so that only the token can be why it is refused.
CALLS: dict[tuple[str, str], tuple[dict, dict | None]] = {
    ("POST", "/api/v1/runs"): ({}, {"project": PROJECT, "name": "intruder"}),
    ("GET", "/api/v1/runs"): ({"project": PROJECT}, None),
    ("GET", "/api/v1/runs/{run_id}"): ({}, None),
    ("PATCH", "/api/v1/runs/{run_id}"): ({}, {"status": "failed"}),
    ("GET", "/api/v1/runs/{run_id}/keys"): ({}, None),
    ("POST", "/api/v1/runs/{run_id}/steps"): ({}, batch([50])),
    ("GET", "/api/v1/runs/{run_id}/series"): ({"keys": "loss,alpha_metric"}, None),
    ("GET", "/api/v1/runs/{run_id}/histograms"): ({"name": "h0"}, None),
    ("GET", "/api/v1/runs/{run_id}/samples"): ({}, None),
    ("GET", "/api/v1/runs/{run_id}/rollouts"): ({"q": "alpha-completion"}, None),
    ("GET", "/api/v1/runs/{run_id}/rollouts/steps"): ({}, None),
    ("GET", "/api/v1/runs/{run_id}/alert-markers"): ({}, None),
    ("GET", "/api/v1/runs/{run_id}/forecast"): ({}, None),
    ("GET", "/api/v1/runs/{run_id}/regime"): ({}, None),
    ("GET", "/api/v1/compare"): ({"runs": "{run_id}", "keys": "loss,alpha_metric"}, None),
    ("GET", "/api/v1/projects"): ({}, None),
    ("GET", "/api/v1/alerts"): ({"project": PROJECT}, None),
    ("GET", "/api/v1/alerts/{alert_id}"): ({}, None),
    ("GET", "/api/v1/projects/{project}/rules"): ({}, None),
    ("POST", "/api/v1/projects/{project}/rules"): (
        {}, {"name": "intruder", "detector": "threshold", "metric": "loss", "op": ">", "value": 1}),
    ("GET", "/api/v1/projects/{project}/rules/{name}"): ({}, None),
    ("PUT", "/api/v1/projects/{project}/rules/{name}"): ({}, {"metric": "loss", "condition": "> 9"}),
    ("PATCH", "/api/v1/projects/{project}/rules/{name}"): ({}, {"value": 9}),
    ("DELETE", "/api/v1/projects/{project}/rules/{name}"): ({}, None),
    ("POST", "/api/v1/projects/{project}/rules/{name}/disable"): ({}, None),
    ("POST", "/api/v1/projects/{project}/rules/{name}/enable"): ({}, None),
    ("GET", "/api/v1/projects/{project}/channels"): ({}, None),
    ("POST", "/api/v1/projects/{project}/channels"): ({}, {"name": "intruder", "kind": "slack", "url": PUBLIC_HOOK}),
    ("GET", "/api/v1/projects/{project}/channels/{channel_id}"): ({}, None),
    ("PATCH", "/api/v1/projects/{project}/channels/{channel_id}"): ({}, {"enabled": False}),
    ("DELETE", "/api/v1/projects/{project}/channels/{channel_id}"): ({}, None),
    ("POST", "/api/v1/projects/{project}/channels/{channel_id}/test"): ({}, None),
    ("GET", "/api/v1/projects/{project}/silences"): ({}, None),
    ("POST", "/api/v1/projects/{project}/silences"): (
        {}, {"matchers": [{"name": "rule", "value": "x"}], "duration_s": 60}),
    ("GET", "/api/v1/projects/{project}/silences/{silence_id}"): ({}, None),
    ("DELETE", "/api/v1/projects/{project}/silences/{silence_id}"): ({}, None),
}


def _operations(c: httpx.Client) -> set[tuple[str, str]]:
    spec = c.get("/api/v1/openapi.json").json()
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}


def _call(c: httpx.Client, op: tuple[str, str], ids: dict, **path_overrides) -> httpx.Response:
    method, template = op
    params, body = CALLS[op]
    fill = {**ids, **path_overrides}
    params = {k: v.format(**fill) for k, v in params.items()}
    return c.request(method, template.format(**fill), params=params, json=body)


def _leaks(response: httpx.Response) -> list[str]:
    return [m for m in MARKERS if m in response.text]


def _unchanged(owner: httpx.Client, ids: dict) -> None:
    run = owner.get(f"/api/v1/runs/{ids['run_id']}").json()
    assert run["status"] == "running" and run["step_count"] == 4
    channel = owner.get(f"/api/v1/projects/{PROJECT}/channels/{ids['channel_id']}").json()
    assert channel["enabled"] is True and channel["name"] == "alpha-hook-name"
    rules = {r["name"]: r for r in owner.get(f"/api/v1/projects/{PROJECT}/rules").json()["rules"]}
    assert rules["alpha_rule"]["value"] == 0.5 and rules["alpha_rule"]["enabled"] and "intruder" not in rules
    silences = owner.get(f"/api/v1/projects/{PROJECT}/silences").json()["silences"]
    assert [s["id"] for s in silences] == [ids["silence_id"]]
    assert [r["name"] for r in owner.get("/api/v1/runs").json()["runs"]] == ["alpha-secret-run"]


def test_no_endpoint_lets_another_project_in(server, db_url):
    owner_token, intruder_token = create_token(db_url, PROJECT), create_token(db_url, "beta")
    with _client(server, owner_token) as owner, _client(server, intruder_token) as intruder:
        ids = _seed(owner)
        ops = _operations(owner)
        assert ops - PUBLIC == set(CALLS), "a new endpoint must be added to CALLS and walked here"
        for op in sorted(ops - PUBLIC):
            r = _call(intruder, op, ids)
            assert r.status_code in ((200,) if op in OWN_LISTS else (403, 404)), (op, r.status_code, r.text[:300])
            assert _leaks(r) == [], (op, r.text[:300])
            if "{project}" in op[1] and "_id}" in op[1]:
                # Alpha's object named under the intruder's own project: still not found.
                r = _call(intruder, op, ids, project="beta")
                assert r.status_code == 404 and _leaks(r) == [], (op, "under beta", r.text[:300])
        # Unfiltered lists and health answers carry none of alpha's data either.
        for path, params in [("/api/v1/runs", {}), ("/api/v1/alerts", {}),
                             ("/api/v1/alerts", {"run_id": ids["run_id"]}), *[(p, {}) for _, p in PUBLIC]]:
            r = intruder.get(path, params=params)
            assert r.status_code == 200 and _leaks(r) == [], (path, r.text[:300])
        _unchanged(owner, ids)


def test_a_read_token_changes_nothing_anywhere(server, db_url):
    owner_token, reader_token = create_token(db_url, PROJECT), create_token(db_url, PROJECT, "read")
    with _client(server, owner_token) as owner, _client(server, reader_token) as reader:
        ids = _seed(owner)
        ops = _operations(owner) - PUBLIC
        writes = sorted(op for op in ops if op[0] != "GET")
        assert len(writes) >= 15
        for op in writes:
            r = _call(reader, op, ids)
            assert r.status_code == 403 and "read token" in r.json()["detail"], (op, r.status_code, r.text[:300])
        for op in sorted(ops - set(writes)):
            r = _call(reader, op, ids)
            assert r.status_code == 200, (op, r.status_code, r.text[:300])
        _unchanged(owner, ids)
