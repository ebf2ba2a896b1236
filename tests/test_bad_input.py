"""Bad input gets a clear 4xx and never a 500, and nothing stored is lost or changed."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.support.records import batch, record


@pytest.fixture
def run_id(api):
    rid = api.post("/runs", json={"project": "p", "name": "victim"}).json()["id"]
    assert api.post(f"/runs/{rid}/steps", json=batch(range(5))).status_code == 200
    return rid


def _unchanged(api, run_id):
    series = api.get(f"/runs/{run_id}/series", params={"keys": "loss"}).json()["series"]["loss"]
    assert series["steps"] == [0, 1, 2, 3, 4]
    assert series["values"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]


def _post_raw(api, path, body: bytes | str, **headers):
    return api.post(path, content=body, headers={"content-type": "application/json", **headers})


BAD_BODIES = {
    "malformed json": '{"records": [',
    "not an object": "[1, 2, 3]",
    "records not a list": '{"records": 5}',
    "missing step": '{"records": [{"scalars": {"a": 1}}]}',
    "negative step": '{"records": [{"step": -1}]}',
    "step as text": '{"records": [{"step": "ten"}]}',
    "huge step": '{"records": [{"step": 99999999999999999999999}]}',
    "scalar as text": '{"records": [{"step": 9, "scalars": {"a": "high"}}]}',
    "scalar as object": '{"records": [{"step": 9, "scalars": {"a": {"b": 1}}}]}',
    "unknown field": '{"records": [{"step": 9, "colour": "red"}]}',
    "sql in metric name": '{"records": [{"step": 9, "scalars": {"x\'); DROP TABLE steps;--": 1}}]}',
    "html in metric name": '{"records": [{"step": 9, "scalars": {"<script>alert(1)</script>": 1}}]}',
    "megabyte metric name": json.dumps({"records": [{"step": 9, "scalars": {"a" * 1_000_000: 1}}]}),
    "histogram without edges": '{"records": [{"step": 9, "histograms": {"h": {"counts": [1]}}}]}',
    "histogram edges mismatch": '{"records": [{"step": 9, "histograms": {"h": {"counts": [1, 2], "edges": [0, 1]}}}]}',
    "histogram NaN count": '{"records": [{"step": 9, "histograms": {"h": {"counts": [NaN], "lo": 0, "hi": 1}}}]}',
    "histogram negative count": '{"records": [{"step": 9, "histograms": {"h": {"counts": [-1], "lo": 0, "hi": 1}}}]}',
    "histogram lo above hi": '{"records": [{"step": 9, "histograms": {"h": {"counts": [1], "lo": 2, "hi": 1}}}]}',
    "empty body": "",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_batches_get_4xx_and_change_nothing(api, run_id, case):
    r = _post_raw(api, f"/runs/{run_id}/steps", BAD_BODIES[case])
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "detail" in r.json()
    assert len(r.content) < 20_000  # errors do not echo megabytes back
    _unchanged(api, run_id)


def test_unknown_run(api):
    r = api.post("/runs/424242/steps", json=batch([0]))
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert api.get("/runs/424242/series", params={"keys": "loss"}).status_code == 404
    assert api.get("/runs/abc").status_code == 422


def test_huge_body_is_413(server, api, run_id, make_settings):
    limit = make_settings().max_body_bytes
    big = b'{"records": [' + b" " * (limit + 10) + b"]}"
    r = _post_raw(api, f"/runs/{run_id}/steps", big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    _unchanged(api, run_id)


def test_gzip_bomb_is_413_and_bad_gzip_400(api, run_id, make_settings):
    limit = make_settings().max_body_bytes
    bomb = gzip.compress(b'{"records": [' + b" " * (limit + 1000) + b"]}")
    assert len(bomb) < limit // 100
    r = _post_raw(api, f"/runs/{run_id}/steps", bomb, **{"content-encoding": "gzip"})
    assert r.status_code == 413
    r = _post_raw(api, f"/runs/{run_id}/steps", b"not gzip at all", **{"content-encoding": "gzip"})
    assert r.status_code == 400
    r = _post_raw(api, f"/runs/{run_id}/steps", b"{}", **{"content-encoding": "br"})
    assert r.status_code == 415
    _unchanged(api, run_id)


def test_batch_over_record_limit_is_413(api, run_id):
    r = api.post(f"/runs/{run_id}/steps", json=batch(range(100, 10_101), histograms=0, n_scalars=2))
    assert r.status_code == 413 and "MAX_BATCH_RECORDS" in r.json()["detail"]
    _unchanged(api, run_id)


def test_too_many_bins_is_413(api, run_id):
    r = api.post(f"/runs/{run_id}/steps", json={"records": [record(50, bins=5000)]})
    assert r.status_code == 413 and "MAX_HISTOGRAM_BINS" in r.json()["detail"]


def test_bad_run_bodies(api):
    for body in [
        {},
        {"project": "p"},
        {"project": "", "name": "r"},
        {"project": "p", "name": "x" * 201},
        {"project": "p", "name": "tab\there"},
        {"project": "p", "name": "r", "config": [1, 2]},
        {"project": "p", "name": "r", "extra": 1},
    ]:
        r = api.post("/runs", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)


def test_bad_query_parameters(api, run_id):
    assert api.get(f"/runs/{run_id}/series", params={"keys": "loss", "max_points": 0}).status_code == 422
    assert api.get(f"/runs/{run_id}/series", params={"keys": "loss", "max_points": "many"}).status_code == 422
    assert api.get(f"/runs/{run_id}/histograms", params={"name": ""}).status_code == 422
    assert api.get("/runs", params={"status": "weird"}).status_code == 422
    assert api.get("/runs", params={"limit": 0}).status_code == 422
