"""Properties over random inputs: finite in, finite (or None) out; masses and counts add up."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fadewatch.stats import StatsConfig, compute

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def steps(draw):
    n = draw(st.integers(1, 24))
    t = draw(st.integers(1, 7))
    n_ids = draw(st.integers(1, n))
    ids = draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_ids - 1)))
    return dict(
        advantages=draw(hnp.arrays(np.float64, n, elements=FINITE | st.just(0.0))),
        rewards=draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 0.5, -2.0]))),
        group_ids=ids if draw(st.booleans()) else [f"g{i}" for i in ids],
        entropy=draw(hnp.arrays(np.float32, (n, t), elements=st.floats(0, 20, width=32))),
        logprobs=draw(hnp.arrays(np.float64, (n, t), elements=st.floats(-50, 0))),
        mask=draw(hnp.arrays(np.bool_, (n, t))),
        completions=draw(hnp.arrays(np.int64, (n, t), elements=st.integers(0, 3))),
    )


def check_histogram(name: str, h: dict) -> None:
    counts = h["counts"]
    assert all(math.isfinite(c) and c >= 0 for c in counts), name
    assert math.isclose(sum(counts) + h["underflow"] + h["overflow"], h["count"],
                        rel_tol=1e-9, abs_tol=1e-12), name
    if "edges" in h:
        assert len(h["edges"]) == len(counts) + 1 and h["edges"] == sorted(h["edges"])
        assert len(h["labels"]) == len(counts)
    else:
        assert h["bins"] == len(counts) and h["lo"] < h["hi"]
    qs = [h["quantiles"][k] for k in ("0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99")]
    if h["count"] > 0:
        assert all(q is not None for q in qs), name
        assert qs == sorted(qs), name
        assert h["min"] - 1e-9 <= qs[0] and qs[-1] <= h["max"] + 1e-9, name
    for f in ("sum", "sum_sq", "min", "max"):
        assert h[f] is None or math.isfinite(h[f])


@settings(max_examples=120, deadline=None)
@given(steps(), st.booleans())
def test_finite_inputs_give_finite_outputs(kw, token_adv):
    if token_adv:
        kw["advantages"] = kw["entropy"].astype(np.float64) - 3.0
    s = compute(**kw)
    assert s.nonfinite == []
    for name, v in s.scalars.items():
        assert v is None or math.isfinite(v), name
    for name, h in s.histograms.items():
        check_histogram(name, h)
    sc = s.scalars
    assert sc["sign/m_pos"] >= 0 and sc["sign/m_neg"] >= 0
    assert sc["sign/balance"] is None or -1 - 1e-12 <= sc["sign/balance"] <= 1 + 1e-12
    assert sc["difficulty/ess_frac"] is None or 0 < sc["difficulty/ess_frac"] <= 1 + 1e-9
    assert 0 <= sc["difficulty/no_signal_frac"] <= 1
    passes = [v for k, v in sc.items() if k.startswith("pass@")]
    assert all(0 <= p <= 1 + 1e-12 for p in passes)
    assert sc["pass@1"] == sc["difficulty/solve_rate"] or math.isclose(sc["pass@1"], sc["difficulty/solve_rate"])
    for name in ("diversity/distinct_frac", "diversity/distinct_1", "diversity/distinct_2",
                 "diversity/pairwise_jaccard"):
        assert sc[name] is None or 0 <= sc[name] <= 1 + 1e-12, name
    for name in ("difficulty/mass_pos", "difficulty/mass_neg"):
        assert all(c >= 0 for c in s.histograms[name]["counts"])
    assert math.isclose(s.histograms["difficulty/mass_pos"]["count"], sc["sign/m_pos"], rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(s.histograms["difficulty/mass_neg"]["count"], sc["sign/m_neg"], rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 50), elements=FINITE))
def test_sign_masses_add_up_to_the_mean(adv):
    s = compute(advantages=adv, config=StatsConfig(zero_tol=0.0)).scalars
    scale = max(1.0, float(np.abs(adv).max()))
    assert math.isclose(s["sign/m_pos"] - s["sign/m_neg"], adv.mean(), rel_tol=1e-9, abs_tol=1e-12 * scale)
    assert s["sign/n_pos"] + s["sign/n_neg"] + s["sign/n_zero"] == len(adv)
    assert s["sign/n_pos"] == (adv > 0).sum() and s["sign/n_zero"] == (adv == 0).sum()
    # The default tolerance moves at most zero_tol per rollout out of the masses.
    d = compute(advantages=adv).scalars
    assert abs((d["sign/m_pos"] - d["sign/m_neg"]) - adv.mean()) <= 1e-6 + 1e-12 * scale


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.data())
def test_pass_at_k_grows_with_k(n, n_groups, data):
    # Groups of one size: with unequal sizes pass@k averages over groups of at least k only.
    rewards = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n * n_groups, max_size=n * n_groups))
    s = compute(rewards=rewards, group_ids=n).scalars
    ks = sorted(int(k[5:]) for k in s if k.startswith("pass@"))
    assert ks[0] == 1 and ks[-1] == n
    assert s[f"pass@{n}"] == np.mean(np.reshape(rewards, (n_groups, n)).max(1))
    values = [s[f"pass@{k}"] for k in ks]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 40)),
                  elements=st.floats(-100, 100, width=32)),
       st.integers(1, 100), st.floats(-10, 0), st.floats(0.5, 20))
def test_uniform_histograms_conserve_counts(x, bins, lo, width):
    from fadewatch.stats import HistogramSpec

    cfg = StatsConfig(histograms={"entropy": HistogramSpec(lo, lo + width, bins)})
    mask = (np.arange(x.size).reshape(x.shape) % 3) != 0
    h = compute(entropy=x, mask=mask, config=cfg).histograms["entropy"]
    assert h["count"] == mask.sum()
    check_histogram("entropy", h)
    assert h["underflow"] == (x[mask] < lo).sum()
