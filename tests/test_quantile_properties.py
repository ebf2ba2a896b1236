"""One quantile routine for the hook and the server: merged columns and token histograms stay
inside [min, max] and within the slot (one bin, or the span of a tail) that holds the rank.

Runs are drawn at random (discrete, continuous, heavy-tailed, values outside the bins),
turned into records by the hook's own statistics, merged into columns by the server's read
maths (single steps and pre-aggregated step blocks), and every column's quantiles are
compared with the exact quantiles of the raw values it merges.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadewatch.protocol.histograms import bin_quantiles, slot_bounds, uniform_edges
from fadewatch.server import blocks
from fadewatch.server.store.histogram_reads import QUANTILE_KEYS, _matrix
from fadewatch.stats import HistogramSpec, StatsConfig, compute

KINDS = ("discrete", "positive_only", "continuous", "heavy", "outside")


def draw_values(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "positive_only":  # REINFORCE on {0, 1}: advantages are only 0 and 1
        return (rng.random(n) < rng.random()).astype(np.float64)
    if kind == "discrete":
        return rng.choice([-2.0, -0.5, 0.0, 0.25, 3.0], n)
    if kind == "continuous":
        return rng.normal(rng.normal(), rng.uniform(0.1, 2.0), n)
    if kind == "heavy":
        return rng.standard_t(1.5, n)
    return rng.uniform(-12.0, 12.0, n)


def allowed_error(raw: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Width of the widest slot (bins, and the tails cut to [min, max]) holding the ranks of q."""
    xs = np.sort(raw)
    left, right = slot_bounds(edges, xs[0], xs[-1])
    rank = q * (len(xs) - 1)
    widths = []
    for k in {int(np.floor(rank)), int(np.ceil(rank))}:
        slot = int(np.searchsorted(edges, xs[k], side="right"))  # 0 underflow ... bins + 1 overflow
        widths.append(right[slot] - left[slot])
    return max(widths)


@st.composite
def run_records(draw):
    kind = draw(st.sampled_from(KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo = draw(st.sampled_from([-4.0, -1.0, 0.0]))
    spec = HistogramSpec(lo, lo + draw(st.sampled_from([2.0, 5.0, 8.0])), draw(st.integers(1, 80)))
    cfg = StatsConfig(histograms={"advantages": spec})
    steps = sorted(draw(st.sets(st.integers(0, 300), min_size=2, max_size=40)))
    values = {s: draw_values(rng, kind, int(rng.integers(1, 30))) for s in steps}
    records = [(s, compute(advantages=values[s], config=cfg).histograms["advantages"]) for s in steps]
    return spec, values, records, draw(st.integers(1, 12)), draw(st.sampled_from([1, 4, 16]))


def units_of(records: list, level: int) -> list[dict]:
    """What the server reads: single steps (with their exact quantiles), or step blocks."""
    if level == 1:
        units = []
        for step, data in records:
            unit = blocks.histogram_block(step, data)
            unit["quantiles"] = data["quantiles"]
            units.append(unit)
        return units
    return [b for _, b in sorted(blocks.histogram_blocks(records, level).items())]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_records())
def test_merged_columns_stay_in_min_max_and_within_one_slot_of_the_exact_quantiles(args):
    spec, values, records, max_steps, level = args
    edges = uniform_edges(spec.lo, spec.hi, spec.bins)
    m = _matrix(1, "advantages", units_of(records, level), max_steps)
    for col, (first, last) in enumerate(zip(m.first_steps, m.steps)):
        raw = np.concatenate([v for s, v in values.items() if first <= s <= last])
        assert m.min[col] == raw.min() and m.max[col] == raw.max()
        for key in QUANTILE_KEYS:
            q, got = float(key), m.quantiles[key][col]
            exact = float(np.quantile(raw, q))
            assert raw.min() <= got <= raw.max(), (key, got)
            assert abs(got - exact) <= allowed_error(raw, edges, q) * (1 + 1e-9) + 1e-12, (key, got, exact)


@pytest.mark.parametrize("kind", KINDS)
def test_token_histogram_quantiles_are_exact_in_the_tails_and_within_one_bin_inside(kind):
    rng = np.random.default_rng(7)
    ent = draw_values(rng, kind, 40 * 64).reshape(40, 64) + 4.0  # the entropy bins are [0, 8)
    mask = rng.random((40, 64)) < 0.8
    cfg = StatsConfig(tail_values=64)
    h = compute(entropy=ent, mask=mask, config=cfg).histograms["entropy"]
    raw = ent[mask]
    edges = uniform_edges(0.0, 8.0, 64)
    for key, got in h["quantiles"].items():
        q = float(key)
        exact = float(np.quantile(raw, q))
        k = q * (raw.size - 1)
        below, above = np.sort(raw)[[int(np.floor(k)), int(np.ceil(k))]]
        outside = max(below, above) < 0.0 or min(below, above) >= 8.0
        tail_exact = outside and (np.sum(raw < 0) <= 64 if below < 0 else np.sum(raw >= 8) <= 64)
        if tail_exact:
            assert got == pytest.approx(exact, rel=1e-12, abs=1e-12), key
        else:
            assert abs(got - exact) <= allowed_error(raw, edges, q) * (1 + 1e-9) + 1e-12, (key, got, exact)


def test_few_token_values_give_the_exact_linear_quantiles():
    ent = np.array([[0.31, 2.2, 7.9], [5.5, 0.0, 0.0]])
    mask = np.array([[1, 1, 1], [1, 0, 0]])
    h = compute(entropy=ent, mask=mask).histograms["entropy"]
    raw = np.array([0.31, 2.2, 7.9, 5.5])
    for key, got in h["quantiles"].items():
        assert got == pytest.approx(float(np.quantile(raw, float(key))), rel=1e-12)


def test_positive_only_merged_band_is_inside_zero_one():
    # The case that showed a 5-95% band down to -3.7: two steps of 0/1 advantages merged.
    counts = np.zeros(80)
    counts[40], counts[50] = 70.0, 30.0  # 0 is in bin 40 of [-4, 4); 1 in bin 50
    q = bin_quantiles(counts, uniform_edges(-4, 4, 80), [0.05, 0.5, 0.95], vmin=0.0, vmax=1.0)
    assert q.min() >= 0.0 and q.max() <= 1.0
    assert q[0] <= 0.1 and q[2] == 1.0


def test_records_without_min_and_max_read_their_tails_at_the_edges():
    # Histograms logged by hand may leave out min and max; their tails are unbounded, so an
    # underflow rank reads as lo and an overflow rank as hi, never as a gap in the bands.
    counts = np.array([0.0, 5.0, 10.0, 0.0])
    q = bin_quantiles(counts, uniform_edges(-2, 2, 4), [0.0, 0.05, 0.5, 0.99, 1.0], underflow=3.0, overflow=2.0)
    assert np.isfinite(q).all()
    assert q[0] == q[1] == -2.0 and q[-1] == q[-2] == 2.0 and -1.0 <= q[2] <= 1.0
