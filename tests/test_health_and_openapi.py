"""Operational endpoints: health, readiness, Prometheus metrics, OpenAPI."""

from __future__ import annotations

import httpx

from tests.support.records import batch


def test_healthz_readyz(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert httpx.get(f"{server.url}/api/v1/readyz").status_code == 200


def test_metrics_count_requests_rows_and_duplicates(server, api):
    run = api.post("/runs", json={"project": "p", "name": "m"}).json()["id"]
    api.post(f"/runs/{run}/steps", json=batch(range(5)))
    api.post(f"/runs/{run}/steps", json=batch(range(3, 7)))
    text = httpx.get(f"{server.url}/metrics").text
    assert "fadewatch_steps_ingested_total 7.0" in text
    assert "fadewatch_steps_duplicate_total 2.0" in text
    assert 'fadewatch_http_requests_total{method="POST",route="/runs/{run_id}/steps",status="200"} 2.0' in text
    assert "fadewatch_http_request_duration_seconds_bucket" in text


def test_openapi_documents_every_route(server):
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    paths = spec["paths"]
    for path in ["/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/steps",
                 "/api/v1/runs/{run_id}/series", "/api/v1/runs/{run_id}/histograms",
                 "/healthz", "/readyz", "/metrics"]:
        assert path in paths, path
    body = paths["/api/v1/runs/{run_id}/steps"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/StepBatch")
    assert "StepRecord" in spec["components"]["schemas"]


def test_cli_server_serves_on_a_sqlite_file(live_server):
    with live_server.client() as c:
        run = c.post("/runs", json={"project": "cli", "name": "one"}).json()
        assert c.post(f"/runs/{run['id']}/steps", json=batch(range(3))).json()["stored"] == 3
    assert live_server.stored_steps(run["id"], "loss") == [0, 1, 2]
    assert (live_server.data_dir / "server.db").exists()
    assert "local mode" in live_server.log()
