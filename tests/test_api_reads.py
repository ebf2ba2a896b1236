"""Reads: downsampled series keep spikes; histogram matrices merge steps by adding counts."""

from __future__ import annotations

import numpy as np

from fadewatch.protocol.histograms import bin_quantiles
from fadewatch.server.downsample import downsample_series, rebin_counts


def _run(api):
    return api.post("/runs", json={"project": "p", "name": "reads"}).json()["id"]


def test_series_downsampling_keeps_min_and_max(api):
    run_id = _run(api)
    records = []
    for s in range(1000):
        value = 1.0
        if s == 437:
            value = 50.0  # a one-step spike must survive downsampling
        if s == 612:
            value = -20.0
        records.append({"step": s, "scalars": {"x": value, "y": float(s)}})
    assert api.post(f"/runs/{run_id}/steps", json={"records": records}).status_code == 200

    body = api.get(f"/runs/{run_id}/series", params={"keys": "x,y", "max_points": 50}).json()
    assert body["downsampled"] is True and body["last_step"] == 999
    x = body["series"]["x"]
    assert len(x["steps"]) == 50
    assert max(x["max"]) == 50.0 and min(x["min"]) == -20.0
    y = body["series"]["y"]
    assert y["steps"][-1] == 999 and y["values"][-1] == 999.0  # last value per bucket
    assert y["min"][0] == 0.0


def test_series_since_a_step_for_live_refresh(api):
    run_id = _run(api)
    api.post(f"/runs/{run_id}/steps", json={"records": [{"step": s, "scalars": {"x": s}} for s in range(20)]})
    body = api.get(f"/runs/{run_id}/series", params={"keys": "x", "min_step": 15}).json()
    assert body["series"]["x"]["steps"] == [15, 16, 17, 18, 19]


def test_series_of_a_missing_key_is_empty_and_keys_are_required(api):
    run_id = _run(api)
    api.post(f"/runs/{run_id}/steps", json={"records": [{"step": 0, "scalars": {"x": 1}}]})
    body = api.get(f"/runs/{run_id}/series", params={"keys": "nope"}).json()
    assert body["series"]["nope"]["steps"] == []
    assert api.get(f"/runs/{run_id}/series", params={"keys": ","}).status_code == 422
    assert api.get(f"/runs/{run_id}/series").status_code == 422
    assert api.get(f"/runs/{run_id}/keys").json() == ["x"]


def test_histogram_matrix_merges_neighbouring_steps(api):
    run_id = _run(api)
    records = [
        {"step": s, "histograms": {"adv": {"lo": 0.0, "hi": 4.0, "counts": [s, 1, 0, 2],
                                           "sum": 1.0, "min": 0.1, "max": 3.5 + s}}}
        for s in range(10)
    ]
    api.post(f"/runs/{run_id}/steps", json={"records": records})
    m = api.get(f"/runs/{run_id}/histograms", params={"name": "adv", "max_steps": 5}).json()
    assert len(m["steps"]) == 5
    assert m["first_steps"][0] == 0 and m["steps"][-1] == 9
    total = np.array(m["counts"]).sum(axis=0)
    assert total.tolist() == [45.0, 10.0, 0.0, 20.0]  # counts are conserved
    assert m["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert m["max"][-1] == 12.5 and m["min"][0] == 0.1
    full = api.get(f"/runs/{run_id}/histograms", params={"name": "adv"}).json()
    assert len(full["steps"]) == 10


def test_histogram_with_explicit_edges_and_labels(api):
    run_id = _run(api)
    h = {"edges": [0, 0, 0.5, 1, 1], "counts": [1, 2, 3, 4], "labels": ["0", "(0,.5]", "(.5,1)", "1"]}
    api.post(f"/runs/{run_id}/steps", json={"records": [{"step": 0, "histograms": {"d": h}}]})
    m = api.get(f"/runs/{run_id}/histograms", params={"name": "d"}).json()
    assert m["labels"] == ["0", "(0,.5]", "(.5,1)", "1"] and m["counts"] == [[1, 2, 3, 4]]


def test_downsample_series_unit():
    steps = np.arange(10)
    values = np.array([1, 2, np.nan, 4, 5, 6, 7, 8, 9, 10], dtype=float)
    b = downsample_series(steps, values, 3)
    assert len(b.steps) == 3
    assert np.nanmin(b.min) == 1 and np.nanmax(b.max) == 10
    assert b.steps[-1] == 9 and b.values[-1] == 10


def test_rebin_conserves_mass_and_quantiles_are_monotone():
    counts = np.array([1.0, 3.0, 0.0, 6.0])
    moved = rebin_counts(counts, np.linspace(0, 4, 5), np.linspace(-1, 5, 13))
    assert np.isclose(moved.sum(), counts.sum())
    q = bin_quantiles(counts, np.linspace(0, 4, 5), np.array([0.1, 0.5, 0.9]), vmin=0.0, vmax=4.0)
    assert np.all(np.diff(q) >= 0) and 0 <= q[0] <= q[-1] <= 4
