"""Step ingest: one transaction per batch, idempotent on (run, step)."""

from __future__ import annotations

import gzip
import json
import threading

from tests.support.records import batch, record


def _run(api, name="r"):
    return api.post("/runs", json={"project": "p", "name": name}).json()["id"]


def _steps(api, run_id, key="loss"):
    r = api.get(f"/runs/{run_id}/series", params={"keys": key, "max_points": 100000})
    assert r.status_code == 200, r.text
    return r.json()["series"][key]


def test_batch_is_stored_and_read_back(api):
    run_id = _run(api)
    r = api.post(f"/runs/{run_id}/steps", json=batch(range(10)))
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 10, "duplicates": 0, "duplicate_steps": []}
    series = _steps(api, run_id)
    assert series["steps"] == list(range(10))
    assert series["values"][3] == 0.25
    run = api.get(f"/runs/{run_id}").json()
    assert run["last_step"] == 9 and run["step_count"] == 10
    assert run["summary"]["loss"] == 0.1


def test_duplicates_across_batches_are_reported_not_stored(api):
    run_id = _run(api)
    api.post(f"/runs/{run_id}/steps", json=batch(range(5)))
    changed = batch(range(3, 8))
    for rec in changed["records"]:
        rec["scalars"]["loss"] = -1.0  # a retry must never overwrite what is stored
    r = api.post(f"/runs/{run_id}/steps", json=changed).json()
    assert r["stored"] == 3 and r["duplicates"] == 2 and r["duplicate_steps"] == [3, 4]
    values = dict(zip(*[_steps(api, run_id)[k] for k in ("steps", "values")]))
    assert values[3] == 0.25 and values[7] == -1.0
    assert api.get(f"/runs/{run_id}").json()["step_count"] == 8


def test_duplicates_inside_one_batch_keep_the_first(api):
    run_id = _run(api)
    records = [record(1), record(1), record(2)]
    records[1]["scalars"]["loss"] = 99.0
    r = api.post(f"/runs/{run_id}/steps", json={"records": records}).json()
    assert r == {"stored": 2, "duplicates": 1, "duplicate_steps": [1]}
    assert _steps(api, run_id)["values"][0] == 0.5


def test_gzip_body(api):
    run_id = _run(api)
    body = gzip.compress(json.dumps(batch(range(100))).encode())
    r = api.post(
        f"/runs/{run_id}/steps", content=body,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 100


def test_nan_and_inf_are_stored_as_null_with_a_flag(api):
    run_id = _run(api)
    body = ('{"records": [{"step": 0, "scalars": {"loss": NaN, "kl": Infinity, "ok": 1.5, "m": -Infinity},'
            ' "histograms": {"a": {"lo": 0, "hi": 1, "counts": [1, 2], "sum": NaN, "min": -Infinity}}}]}')
    r = api.post(f"/runs/{run_id}/steps", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    run = api.get(f"/runs/{run_id}").json()
    assert run["summary"] == {"loss": None, "kl": None, "ok": 1.5, "m": None}
    matrix = api.get(f"/runs/{run_id}/histograms", params={"name": "a"}).json()
    assert matrix["counts"] == [[1.0, 2.0]] and matrix["mean"] == [None]


def test_ten_thousand_step_batch(api):
    run_id = _run(api)
    r = api.post(f"/runs/{run_id}/steps", json=batch(range(10_000), histograms=0))
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 10_000
    assert api.get(f"/runs/{run_id}").json()["step_count"] == 10_000


def test_concurrent_batches_for_one_run_from_two_clients(api, server):
    import httpx

    run_id = _run(api)
    results = []

    def send(offset: int) -> None:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client:
            for start in range(0, 400, 50):
                # Both clients send the same steps: each must be stored exactly once.
                steps = range(start + offset, start + offset + 50)
                r = client.post(f"/runs/{run_id}/steps", json=batch(steps, histograms=1))
                results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=send, args=(o,)) for o in (0, 25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == 200 for code, _ in results), results
    stored = sum(body["stored"] for _, body in results)
    assert stored == 425
    assert _steps(api, run_id)["steps"] == list(range(425))
    assert api.get(f"/runs/{run_id}").json()["step_count"] == 425


def test_histograms_stored_per_step(api):
    run_id = _run(api)
    api.post(f"/runs/{run_id}/steps", json=batch(range(4), histograms=2, bins=8))
    for name in ("h0", "h1"):
        m = api.get(f"/runs/{run_id}/histograms", params={"name": name}).json()
        assert m["steps"] == [0, 1, 2, 3]
        assert len(m["counts"]) == 4 and len(m["counts"][0]) == 8
        assert len(m["edges"]) == 9
