"""What the API fuzzer found, each kept as the exact request that showed it.

Every one of these once answered 500 or an answer the OpenAPI did not document.
"""

from __future__ import annotations

import socket
from datetime import datetime

import httpx
import pytest


@pytest.mark.parametrize("path", [
    # A run id past 64 bits reached the SQLite driver, which raised OverflowError: 500.
    "/runs/11834770965789980672/histograms?name=h0",
    "/runs/11834770965789980672",
    # As did an offset past 64 bits in a listing.
    "/alerts?offset=199694912471202529280000&limit=3253&state=pending",
    "/runs?offset=199694912471202529280000",
    "/projects/p/silences?offset=199694912471202529280000",
    # And a step bound past the largest step a record may carry.
    "/runs/1/series?keys=loss&max_step=9223372036854775808",
    "/runs/1/samples?min_step=99999999999999999999",
])
def test_numbers_past_the_columns_are_422_not_500(api, path):
    r = api.get(path)
    assert r.status_code == 422, r.text


def test_run_times_carry_their_zone_on_sqlite(api):
    # SQLite gives datetimes back without a zone: "2026-11-30T20:06:02.649431" is not an
    # RFC 3339 date-time, which the OpenAPI promises.
    run = api.post("/runs", json={"project": "0", "name": "0", "config": {}}).json()
    listed = api.get("/runs", params={"limit": 500, "offset": 0}).json()["runs"][0]
    patched = api.patch(f"/runs/{run['id']}", json={"error": None, "status": "failed"}).json()
    for answer in (run, listed, patched):
        for field in ("created_at", "updated_at"):
            assert datetime.fromisoformat(answer[field]).utcoffset() is not None, answer[field]


def _documented(spec: dict, path: str, method: str) -> dict:
    return spec["paths"][f"/api/v1{path}"][method]["responses"]


def test_the_shared_error_answers_are_documented(api):
    spec = api.get("/openapi.json").json()
    # A 404 for a run that does not exist, which POST /runs/75/steps answered undocumented.
    assert api.post("/runs/75/steps", json={"records": []}).status_code == 404
    assert "404" in _documented(spec, "/runs/{run_id}/steps", "post")
    # A body that is not UTF-8 JSON: FastAPI answers 400, undocumented on PUT of a rule.
    r = api.put("/projects/00/rules/diversity_collapse", content=b"y\xff",
                headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"]
    assert "400" in _documented(spec, "/projects/{project}/rules/{name}", "put")
    # Every API operation documents the answers of the shared layers, with their body.
    for path, operations in spec["paths"].items():
        if path.startswith("/api/v1"):
            for method, operation in operations.items():
                for code in ("400", "401", "403", "404", "429", "503"):
                    assert code in operation["responses"], (method, path, code)
                    content = operation["responses"][code]["content"]["application/json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/ErrorMessage"}


def test_a_422_from_a_route_check_matches_the_documented_body(api):
    # The silence check answers one sentence; the OpenAPI said 422 is always a list.
    r = api.post("/projects/0/silences", json={
        "comment": "", "created_by": "", "duration_s": None, "ends_at": "2000-01-01T00:00:00Z",
        "matchers": [{"name": "A", "value": ""}], "starts_at": "2000-01-01T00:00:00Z"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    spec = api.get("/openapi.json").json()
    detail = spec["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]
    assert {"type": "string"} in detail["anyOf"]


def test_an_overlong_url_is_a_documented_400(server):
    # The HTTP layer refuses a request line over about 64 KiB in plain text, before the app.
    # (httpx will not send such a URL, so the request goes over a plain socket.)
    request = f"GET /api/v1/runs/1/series?keys={'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"400", status_line
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert "text/plain" in _documented(spec, "/runs/{run_id}/series", "get")["400"]["content"]


def test_histogram_counts_that_sum_past_the_largest_float_are_422(api):
    # Each count is finite, but math.fsum raised OverflowError on their sum: a 500.
    run = api.post("/runs", json={"project": "fuzz", "name": "overflow"}).json()["id"]
    record = {"step": 701196110, "histograms": {"h": {
        "counts": [7.074495544534756e+121, 1.9, 1.0411950556824641e+308, 3304533424697855.0, 1.0,
                   4.1947314434936727e+307, 1.0832728810344484e+308, 8.847530090562499e+307],
        "edges": None, "lo": 0.0, "hi": 3.533445869175227e+93}}}
    r = api.post(f"/runs/{run}/steps", json={"records": [record]})
    assert r.status_code == 422, r.text
    assert "largest float" in r.text
    # Below the overflow, where plain addition of underflow and overflow would reach inf.
    record["histograms"]["h"] = {"counts": [1e308], "lo": 0.0, "hi": 1.0, "overflow": 1e308}
    assert api.post(f"/runs/{run}/steps", json={"records": [record]}).status_code == 422


def test_a_series_key_that_is_no_metric_name_is_422_not_503(api):
    # A NUL in a key made SQLite's JSON path fail with OperationalError, answered as
    # "database unavailable" (503). Found by the long fuzz run on
    # GET /runs/1/series?keys=...&min_step=16780935&max_points=164051.
    run = api.post("/runs", json={"project": "fuzz", "name": "keys"}).json()["id"]
    api.post(f"/runs/{run}/steps", json={"records": [{"step": 0, "scalars": {"loss": 1.0}}]}).raise_for_status()
    for keys in ("a\x00b", "loss,\x00", "a\x01b"):
        r = api.get(f"/runs/{run}/series", params={"keys": keys, "min_step": 0, "max_points": 164051})
        assert r.status_code == 422, r.text
        assert "not a metric name" in r.json()["detail"]
    assert api.get(f"/runs/{run}/series", params={"keys": "loss,pass@1,entropy/mean"}).status_code == 200
