"""GET /compare: several runs and their series in one request, equal to the per-run reads."""

from __future__ import annotations

import pytest


def _run(api, name: str, steps: int) -> int:
    run_id = api.post("/runs", json={"project": "cmp", "name": name}).json()["id"]
    records = [{"step": s, "scalars": {"x": float(s), "y": s / 10}} for s in range(steps)]
    assert api.post(f"/runs/{run_id}/steps", json={"records": records}).status_code == 200
    return run_id


def test_compare_reads_each_run_as_its_own_series_read_in_the_order_asked(api):
    a, b = _run(api, "a", 300), _run(api, "b", 40)
    body = api.get("/compare", params={"runs": f"{b},{a},999999", "keys": "x,y", "max_points": 50}).json()
    assert [r["id"] for r in body["runs"]] == [b, a]  # the missing run is left out
    for run_id, read in zip((b, a), body["series"]):
        alone = api.get(f"/runs/{run_id}/series", params={"keys": "x,y", "max_points": 50}).json()
        assert read == alone
    since = api.get("/compare", params={"runs": f"{a},{b}", "keys": "x", "after": "295,-1"}).json()["series"]
    assert since[0]["series"]["x"]["steps"] == [296, 297, 298, 299]
    assert len(since[1]["series"]["x"]["steps"]) == 40
    assert api.get("/compare", params={"runs": str(a)}).json()["series"] == []  # no keys: the runs only


@pytest.mark.parametrize("params", [
    {"runs": "x"}, {"runs": ""}, {"runs": ",".join(str(i) for i in range(1, 40))},
    {"runs": "1,2", "after": "5"}, {"runs": "1", "after": "-2"}, {"runs": "1", "keys": ",".join(f"k{i}" for i in range(300))},
    {"runs": "1", "keys": "a\x00b"}, {"runs": "1", "keys": "x" * 300},
])
def test_bad_compare_reads_are_told_why(api, params):
    reply = api.get("/compare", params=params)
    assert reply.status_code == 422 and reply.json()["detail"]
