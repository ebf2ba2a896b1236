"""Packed steps (server/packed.py, server/blocks.py): every value reads back bit for bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fadewatch.server import blocks, packed

# Every float a step may hold (finite), NaN for null, and the awkward ones.
VALUE = st.floats(allow_nan=False, allow_infinity=False) | st.just(math.nan) | st.sampled_from(
    [0.0, -0.0, 1.0, 255.0, 256.0, 65535.0, 65536.0, 2.0**32 - 1, 2.0**32, 2.0**53, 0.1, 1e-45, 3.4e38, 1e-310])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, but for NaN's payload (any NaN is null)."""
    return np.array_equal(a, b, equal_nan=True) and bool((np.signbit(a) == np.signbit(b)).all())


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(0, 9)), elements=VALUE))
def test_rows_read_back_exactly_in_their_narrowest_type(rows):
    for row, raw in zip(rows, packed.pack_rows(rows)):
        back, end = packed.unpack_floats(raw, len(row))
        assert end == len(raw) and _same(back, row)
        assert len(raw) <= 1 + 8 * len(row)
        if len(row) and np.isfinite(row).all() and (row == np.floor(row)).all() and not np.signbit(row).any() \
                and row.max() < 256:
            assert len(raw) == 1 + len(row)  # small whole counts take a byte each


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e12) | st.integers(0, 2**40).map(float), min_size=1, max_size=40),
       st.booleans(), st.booleans(), st.one_of(st.none(), st.floats(-1e6, 1e6)))
def test_histogram_records_read_back_as_they_were_stored(counts, explicit_edges, labelled, total):
    n = len(counts)
    data = {"counts": counts, "underflow": 1.0, "overflow": 0.0, "count": math.fsum(counts) + 1.0,
            "quantiles": {"0.5": total, "0.05": -1.0}}
    if explicit_edges:
        data["edges"] = [float(i) / 3 for i in range(n + 1)]
    else:
        data.update(lo=-1.5, hi=2.5, bins=n)
    if labelled:
        data["labels"] = [f"b{i}" for i in range(n)]
    if total is not None:
        data.update(sum=total, min=-2.0, max=3.0)
    layout = packed.histogram_layout(data)
    assert packed.unpack_histogram(packed.pack_histogram(data, layout), layout) == data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(VALUE, min_size=5, max_size=5), st.lists(VALUE, min_size=10, max_size=10)),
                min_size=1, max_size=12))
def test_histogram_rows_of_mixed_types_decode_together_as_one_at_a_time(records):
    """Rows of one layout whose arrays took different types (bytes, floats) decode in groups."""
    layout = {"lo": 0.0, "hi": 1.0, "bins": 5, "n": 5, "quantiles": ["0.5", "0.9"]}
    rows = []
    for counts, stats in records:
        data = {"counts": counts, **{k: (None if v != v else v) for k, v in zip(packed.HISTOGRAM_STATS, stats)},
                "quantiles": {"0.5": None if stats[7] != stats[7] else stats[7],
                              "0.9": None if stats[8] != stats[8] else stats[8]}}
        rows.append(packed.pack_histogram(data, layout))
    stats, counts = packed.unpack_histogram_rows(rows, layout)
    for raw, stat_row, count_row in zip(rows, stats, counts):
        one_stats, end = packed.unpack_floats(raw, 9)
        one_counts, _ = packed.unpack_floats(raw, 5, end)
        assert _same(stat_row, one_stats) and _same(count_row, one_counts)


def test_a_null_quantile_stays_null_and_absent_numbers_stay_absent():
    data = {"counts": [1.0, 2.0], "lo": 0.0, "hi": 1.0, "bins": 2, "underflow": 0.0, "overflow": 0.0,
            "count": 3.0, "quantiles": {"0.5": None}}
    layout = packed.histogram_layout(data)
    back = packed.unpack_histogram(packed.pack_histogram(data, layout), layout)
    assert back == data and "sum" not in back


def test_scalar_blocks_of_all_levels_at_once_are_those_of_one_level_at_a_time():
    rng = np.random.default_rng(0)
    steps = rng.choice(200_000, 3000, replace=False)
    rows = []
    for s in steps:
        row = {"x": float(rng.normal()), "y": float(s)}
        if s % 7 == 0:
            row["sparse"] = float(s % 13)
        if s % 11 == 0:
            row["x"] = None
        rows.append((int(s), row))
    keys = ["x", "y", "sparse"]
    values = np.array([[r.get(k, math.nan) if r.get(k) is not None else math.nan for k in keys] for _, r in rows])
    at_once = blocks.scalar_level_blocks(np.array([s for s, _ in rows]), keys, values)
    for level in blocks.LEVELS:
        one = blocks.scalar_blocks(rows, level)
        assert {i: b for (lv, i), b in at_once.items() if lv == level} == one


def test_packed_blocks_read_back_exactly():
    block = {"k": {"a": [17, 0.1, -0.0, 3e300], "b": [31, 2.0, 1.0, 5.0]}}
    assert blocks.unpack_scalar_block(blocks.pack_scalar_block(block, 7), ["a", "b"]) == block
    assert blocks.scalar_block_layout(blocks.pack_scalar_block(block, 7)) == 7
    hist = blocks.histogram_block(5, {"edges": [0.0, 1.0, 3.0], "counts": [2.0, 0.5], "count": 2.5, "sum": None,
                                      "min": 0.25, "max": 2.5, "labels": ["lo", "hi"]})
    layout = blocks.histogram_block_layout(hist)
    raw = blocks.pack_histogram_block(hist, 3)
    assert blocks.histogram_block_layout_id(raw) == 3
    assert blocks.unpack_histogram_block(raw, layout) == hist
