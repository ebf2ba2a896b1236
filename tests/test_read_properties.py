"""Properties of the read path over random inputs: downsampling keeps every extreme, histograms
keep their counts, and nothing finite comes out NaN.

The pure reductions (server/downsample.py, server/blocks.py) are checked directly; the
store's read of a downsampled series is checked end to end on SQLite.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fadewatch.server.blocks import histogram_block, histogram_blocks, merge_histogram_block, scalar_blocks
from fadewatch.protocol.histograms import bin_quantiles
from fadewatch.server.downsample import downsample_series, downsample_units, rebin_counts

FINITE = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
COUNT = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def series(draw, max_size=300):
    steps = np.array(sorted(draw(st.sets(st.integers(0, 10**6), min_size=1, max_size=max_size))), dtype=np.int64)
    values = draw(hnp.arrays(np.float64, len(steps), elements=FINITE | st.just(math.nan)))
    return steps, values


@st.composite
def edges(draw, bins):
    lo = draw(st.floats(-1e3, 1e3))
    widths = draw(st.lists(st.floats(1e-3, 1e3), min_size=bins, max_size=bins))
    return np.array([lo, *(lo + w for w in itertools.accumulate(widths))])


@settings(max_examples=200, deadline=None)
@given(series(), st.integers(1, 64))
def test_downsampled_series_keep_the_minimum_and_maximum(data, max_points):
    steps, values = data
    b = downsample_series(steps, values, max_points)
    present = ~np.isnan(values)
    assert len(b.steps) == present.sum() if present.sum() <= max_points else len(b.steps) <= max_points
    assert set(b.steps.tolist()) <= set(steps[present].tolist())
    if not present.any():
        assert len(b.steps) == 0
        return
    assert b.min.min() == values[present].min() and b.max.max() == values[present].max()
    assert np.all(b.min <= b.values) and np.all(b.values <= b.max)
    assert np.isfinite(b.values).all() and np.isfinite(b.min).all() and np.isfinite(b.max).all()
    assert np.all(np.diff(b.steps) > 0)


@settings(max_examples=150, deadline=None)
@given(series(), st.integers(1, 64), st.sampled_from([1, 4, 16]))
def test_blocks_then_buckets_keep_the_extremes_of_every_step(data, max_points, level):
    # The read of a long run: steps summarised into blocks at ingest, blocks into buckets at read.
    steps, values = data
    blocks = scalar_blocks(((int(s), {"x": None if math.isnan(v) else float(v)}) for s, v in zip(steps, values)),
                           level)
    units = sorted(b["k"]["x"] for b in blocks.values() if "x" in b["k"])
    present = values[~np.isnan(values)]
    if not units:
        assert present.size == 0
        return
    u = np.array(units, dtype=float)
    b = downsample_units(u[:, 0].astype(np.int64), u[:, 1], u[:, 2], u[:, 3], max_points)
    assert b.min.min() == present.min() and b.max.max() == present.max()
    assert np.all(b.min <= b.values) and np.all(b.values <= b.max)
    # The last bucket's value is the value of the last step that has one.
    assert b.values[-1] == present[-1] and b.steps[-1] == steps[~np.isnan(values)][-1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=COUNT), edges(n), st.integers(1, 40))), st.data())
def test_rebinned_counts_are_conserved_and_never_negative(args, data):
    counts, src, n_dst = args
    # New edges that cover the old range: all the mass lands somewhere.
    lo = src[0] - data.draw(st.floats(0, 10))
    hi = src[-1] + data.draw(st.floats(0, 10))
    dst = np.linspace(lo, hi, n_dst + 1)
    out = rebin_counts(counts, src, dst)
    assert np.isfinite(out).all() and (out >= -1e-9 * max(1.0, counts.sum())).all()
    assert math.isclose(out.sum(), counts.sum(), rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=COUNT), edges(n))))
def test_quantiles_of_finite_counts_are_finite_ordered_and_inside_the_edges(args):
    counts, e = args
    qs = np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    out = bin_quantiles(counts, e, qs)
    if counts.sum() <= 0:
        assert np.isnan(out).all()
        return
    assert np.isfinite(out).all()
    assert np.all(np.diff(out) >= 0)
    assert e[0] <= out[0] and out[-1] <= e[-1]


@st.composite
def histogram_rows(draw):
    bins = draw(st.integers(1, 12))
    steps = sorted(draw(st.sets(st.integers(0, 500), min_size=1, max_size=40)))
    rows = []
    for step in steps:
        counts = draw(st.lists(COUNT, min_size=bins, max_size=bins))
        under, over = draw(COUNT), draw(COUNT)
        rows.append((step, {"lo": -1.0, "hi": 1.0, "counts": counts, "underflow": under, "overflow": over,
                            "count": math.fsum(counts) + under + over}))
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histogram_rows(), st.sampled_from([1, 4, 16, 64]))
def test_histogram_blocks_conserve_every_count(rows, level):
    blocks = histogram_blocks(rows, level)
    merged = None
    for index in sorted(blocks):
        merged = merge_histogram_block(merged, blocks[index])
    per_bin = np.sum([r[1]["counts"] for r in rows], axis=0)
    assert np.allclose(merged["counts"], per_bin, rtol=1e-9, atol=1e-6)
    assert math.isclose(merged["underflow"], sum(r[1]["underflow"] for r in rows), rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(merged["count"], sum(r[1]["count"] for r in rows), rel_tol=1e-9, abs_tol=1e-6)
    assert merged["n"] == len(rows) and merged["first"] == rows[0][0] and merged["last"] == rows[-1][0]
    assert all(c >= 0 for c in merged["counts"])


@settings(max_examples=100, deadline=None)
@given(st.lists(COUNT, min_size=1, max_size=10), st.lists(COUNT, min_size=1, max_size=10), st.floats(0, 5))
def test_merging_onto_wider_new_edges_keeps_the_older_mass(old_counts, new_counts, widen):
    # Edges that change between steps: the older mass is moved, not dropped, when the new edges cover it.
    old = histogram_block(1, {"lo": -1.0, "hi": 1.0, "counts": old_counts})
    new = histogram_block(2, {"lo": -1.0 - widen, "hi": 1.0 + widen, "counts": new_counts})
    merged = merge_histogram_block(old, new)
    assert merged["edges"] == new["edges"]
    assert math.isclose(sum(merged["counts"]), math.fsum(old_counts) + math.fsum(new_counts),
                        rel_tol=1e-9, abs_tol=1e-6)
    assert all(c >= -1e-6 for c in merged["counts"])


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(series(max_size=400), st.integers(1, 40))
def test_store_reads_of_a_downsampled_series_keep_the_extremes(tmp_path_factory, data, max_points):
    from fadewatch.server.app import prepare_database
    from fadewatch.server.auth import OPEN
    from fadewatch.server.schemas import RunCreate, StepRecord
    from fadewatch.server.settings import ServerSettings
    from fadewatch.server.store import reads, runs, steps as stored

    steps, values = data
    tmp = tmp_path_factory.mktemp("reads")
    db = prepare_database(ServerSettings(dir=tmp, database_url=f"sqlite:///{tmp / 'r.db'}"))
    try:
        with db.transaction() as session:
            run, _ = runs.create_or_resume(session, RunCreate(project="p", name="r"), OPEN)
            records = [StepRecord(step=int(s), scalars={"x": None if math.isnan(v) else float(v)})
                       for s, v in zip(steps, values)]
            stored.store_batch(session, run.id, records, OPEN)
        with db.transaction() as session:
            out = reads.series(session, run.id, ["x"], OPEN, max_points, None, None).series.get("x")
    finally:
        db.engine.dispose()
    present = values[~np.isnan(values)]
    if present.size == 0:
        assert out is None or not out.steps
        return
    lows = [v for v in (out.min or out.values) if v is not None]
    highs = [v for v in (out.max or out.values) if v is not None]
    assert min(lows) == present.min() and max(highs) == present.max()
    assert len(out.steps) <= max_points
    assert all(v is not None and math.isfinite(v) for v in out.values)
