"""Long ranges are read from step blocks: the answers are those of reading every step."""

from __future__ import annotations

import contextlib
import random

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from tests.support.records import histogram
from tests.support.servers import ThreadedServer


def _post(api, run_id, records, size=97):
    for i in range(0, len(records), size):
        r = api.post(f"/runs/{run_id}/steps", json={"records": records[i:i + size]})
        assert r.status_code == 200, r.text


def _records(steps, seed=0):
    rng = random.Random(seed)
    out = []
    for s in steps:
        scalars = {"x": rng.gauss(0, 1), "y": float(s)}
        if s % 7 == 0:
            scalars["sparse"] = float(s % 13)
        if s == 1234:
            scalars["x"] = 99.0  # a one-step spike
        if s % 11 == 0:
            scalars["x"] = None  # non-finite values are stored as null
        out.append({"step": s, "scalars": scalars,
                    "histograms": {"h": histogram(8, seed=s)} if s % 3 else {}})
    return out


def _check_buckets(points, truth):
    """Each bucket's min/max are those of the steps since the previous bucket; its value is its step's."""
    steps = points["steps"]
    assert steps == sorted(steps)
    previous = -1
    for step, value, lo, hi in zip(steps, points["values"], points["min"], points["max"]):
        inside = [v for s, v in truth.items() if previous < s <= step]
        assert value == truth[step]
        assert lo == min(inside) and hi == max(inside)
        previous = step
    assert previous == max(truth)


@pytest.mark.parametrize("window", [(None, None), (5, 2900), (1000, 1400)])
def test_downsampled_series_from_blocks_match_every_step(api, window):
    run_id = api.post("/runs", json={"project": "p", "name": "blocks"}).json()["id"]
    steps = list(range(3000))
    records = _records(steps)
    random.Random(1).shuffle(records)  # blocks fill out of order, across batches
    _post(api, run_id, records)
    _post(api, run_id, records[:50])   # duplicates change nothing
    lo, hi = window
    params = {"keys": "x,y,sparse", "max_points": 40}
    params.update({k: v for k, v in (("min_step", lo), ("max_step", hi)) if v is not None})
    body = api.get(f"/runs/{run_id}/series", params=params).json()
    assert body["downsampled"] is True
    lo, hi = lo or 0, 2999 if hi is None else hi
    by_step = {r["step"]: r["scalars"] for r in records}
    for key in ("x", "y", "sparse"):
        truth = {s: v[key] for s, v in by_step.items() if lo <= s <= hi and v.get(key) is not None}
        points = body["series"][key]
        assert 0 < len(points["steps"]) <= 40
        _check_buckets(points, truth)
    if lo <= 1234 <= hi:
        assert max(body["series"]["x"]["max"]) == 99.0


def test_histogram_columns_from_blocks_add_every_step(api):
    run_id = api.post("/runs", json={"project": "p", "name": "hblocks"}).json()["id"]
    records = _records(range(2500))
    _post(api, run_id, records[::-1])
    m = api.get(f"/runs/{run_id}/histograms", params={"name": "h", "max_steps": 30}).json()
    assert 0 < len(m["steps"]) <= 30 and m["first_steps"][0] == 1 and m["steps"][-1] == 2498
    logged = {r["step"]: r["histograms"]["h"] for r in records if r["histograms"]}
    for first, last, counts, total in zip(m["first_steps"], m["steps"], m["counts"], m["count"]):
        inside = [h for s, h in logged.items() if first <= s <= last]
        assert np.allclose(counts, np.sum([h["counts"] for h in inside], axis=0))
        assert total == pytest.approx(sum(h["count"] for h in inside))
    assert sum(m["count"]) == pytest.approx(sum(h["count"] for h in logged.values()))
    # Columns tile the steps: each starts after the previous one ends.
    assert all(a < b for a, b in zip(m["steps"], m["first_steps"][1:]))


def test_migration_builds_blocks_of_runs_stored_before_it(tmp_path):
    from alembic import command

    from fadewatch.server.app import create_app, prepare_database
    from fadewatch.server.db import make_engine
    from fadewatch.server.migrate import alembic_config
    from fadewatch.server.settings import ServerSettings

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    settings = ServerSettings(dir=tmp_path, database_url=url)
    records = _records(range(1500))
    with _serving(create_app(settings, prepare_database(settings))) as client:
        run_id = client.post("/runs", json={"project": "p", "name": "old"}).json()["id"]
        _post(client, run_id, records, 500)
        before = client.get(f"/runs/{run_id}/series", params={"keys": "x,y", "max_points": 30}).json()
        hist_before = client.get(f"/runs/{run_id}/histograms", params={"name": "h", "max_steps": 20}).json()
    command.downgrade(cfg, "0002")  # as if the steps were stored before blocks existed
    engine = make_engine(url)
    with engine.connect() as conn:
        assert "scalar_blocks" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    engine.dispose()
    command.upgrade(cfg, "head")
    with _serving(create_app(settings, prepare_database(settings))) as client:
        after = client.get(f"/runs/{run_id}/series", params={"keys": "x,y", "max_points": 30}).json()
        hist_after = client.get(f"/runs/{run_id}/histograms", params={"name": "h", "max_steps": 20}).json()
    assert after == before and hist_after == hist_before


@contextlib.contextmanager
def _serving(app):
    server = ThreadedServer(app).start()
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_a_block_whose_bin_edges_change_moves_older_mass_onto_the_newer_edges():
    from fadewatch.server.blocks import histogram_blocks

    old = {"lo": 0.0, "hi": 4.0, "counts": [1.0, 2.0, 3.0, 4.0], "count": 10.0, "sum": 20.0, "min": 0.1, "max": 3.9}
    new = {"edges": [0.0, 2.0, 4.0, 8.0], "counts": [5.0, 1.0, 1.0], "count": 7.0, "sum": 15.0, "min": 0.5,
           "max": 7.0}
    (block,) = histogram_blocks([(17, new), (16, old)], 16).values()
    assert block["edges"] == [0.0, 2.0, 4.0, 8.0] and (block["first"], block["last"], block["n"]) == (16, 17, 2)
    assert block["counts"] == [5.0 + 3.0, 1.0 + 7.0, 1.0]
    assert (block["count"], block["sum"], block["min"], block["max"]) == (17.0, 35.0, 0.1, 7.0)
    (same,) = histogram_blocks([(16, old), (18, old)], 16).values()
    assert same["counts"] == [2.0, 4.0, 6.0, 8.0] and same["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
