"""Per-step statistics on small inputs, each against a value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fadewatch.stats import HistogramSpec, StatsConfig, StepStats, compute, finalize, prepare, reduce

# Two groups of four: group "a" solves 1 of 4 (p = 0.25), group "b" all 4 (p = 1).
REWARDS = np.array([1.0, 0, 0, 0, 1, 1, 1, 1])
ADV = np.array([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])  # Dr. GRPO: r - group mean
IDS = ["a"] * 4 + ["b"] * 4


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def basic() -> StepStats:
    return compute(advantages=ADV, rewards=REWARDS, group_ids=IDS)


def test_advantage_moments(basic):
    s = basic.scalars
    std = math.sqrt((0.75**2 + 3 * 0.25**2) / 8)
    assert s["adv/mean"] == approx(0.0)
    assert s["adv/std"] == approx(std)
    assert (s["adv/min"], s["adv/max"]) == (-0.25, 0.75)
    assert s["adv/max_abs_over_std"] == approx(0.75 / std)
    m4 = (0.75**4 + 3 * 0.25**4) / 8
    assert s["adv/kurtosis"] == approx(m4 / std**4 - 3)
    assert s["adv/frac_zero"] == 0.5


def test_sign_axis(basic):
    s = basic.scalars
    assert s["sign/m_pos"] == approx(0.75 / 8)
    assert s["sign/m_neg"] == approx(0.75 / 8)
    assert s["sign/balance"] == approx(0.0)
    assert (s["sign/n_pos"], s["sign/n_neg"], s["sign/n_zero"]) == (1, 3, 4)


def test_difficulty_axis(basic):
    s = basic.scalars
    assert s["difficulty/n_groups"] == 2
    assert s["difficulty/solve_rate"] == approx(0.625)
    assert s["difficulty/no_signal_frac"] == 0.5
    assert s["difficulty/peak"] == approx(0.25)  # all the mass sits in the p = 0.25 group
    assert s["difficulty/ess_frac"] == approx(1.5**2 / 0.75 / 8)
    groups = basic.histograms["difficulty/groups"]
    assert groups["labels"][3] == "(0.2,0.3]" and groups["labels"][11] == "1"
    assert groups["counts"] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    pos, neg = basic.histograms["difficulty/mass_pos"], basic.histograms["difficulty/mass_neg"]
    assert pos["counts"][3] == approx(0.75 / 8) and sum(pos["counts"]) == approx(0.75 / 8)
    assert neg["counts"][3] == approx(0.75 / 8) and pos["count"] == approx(0.75 / 8)
    assert pos["edges"] == [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    assert pos["min"] == pos["max"] == 0.25 and pos["quantiles"]["0.5"] == 0.25


def test_difficulty_bins_are_left_open():
    cfg = StatsConfig()
    _, labels = cfg.difficulty_bins()
    assert labels == ["0", "(0,0.1]", "(0.1,0.2]", "(0.2,0.3]", "(0.3,0.4]", "(0.4,0.5]", "(0.5,0.6]",
                      "(0.6,0.7]", "(0.7,0.8]", "(0.8,0.9]", "(0.9,1)", "1"]
    # Solve rates 0, 1/10, 3/10, 9/10 and 1 in groups of ten land on the edges exactly.
    r = np.zeros(50)
    for g, c in enumerate((0, 1, 3, 9, 10)):
        r[g * 10:g * 10 + c] = 1
    counts = compute(rewards=r, group_ids=10).histograms["difficulty/groups"]["counts"]
    assert counts == [1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1]


def test_rewards(basic):
    s = basic.scalars
    assert s["reward/mean"] == approx(5 / 8)
    assert s["reward/std"] == approx(math.sqrt(15 / 64))
    assert (s["reward/min"], s["reward/max"]) == (0.0, 1.0)
    assert s["reward/success_rate"] == approx(5 / 8)
    cfg = StatsConfig(success_threshold=0.8)
    s = compute(rewards=[0.5, 0.8, 0.9, 0.1], config=cfg).scalars
    assert s["reward/success_rate"] == 0.5


def test_pass_at_k_small(basic):
    s = basic.scalars
    assert s["pass@1"] == approx(0.625)
    assert s["pass@2"] == approx((1 - 3 / 6 + 1) / 2)
    assert s["pass@4"] == 1.0
    assert "pass@8" not in s
    assert s["diversity/pass_gap"] == approx(((1 - 0.25) + 0) / 2)


def test_pass_at_k_matches_the_combinatorial_formula():
    rng = np.random.default_rng(3)
    sizes = [16, 16, 9, 12, 16, 3]
    succ = [rng.random(n) < rng.random() for n in sizes]
    ids = np.concatenate([np.full(n, g) for g, n in enumerate(sizes)])
    s = compute(rewards=np.concatenate(succ).astype(float), group_ids=ids).scalars
    for k in (1, 2, 4, 8, 16):
        groups = [(n, int(x.sum())) for n, x in zip(sizes, succ) if n >= k]
        want = np.mean([1 - math.comb(n - c, k) / math.comb(n, k) for n, c in groups])
        assert s[f"pass@{k}"] == pytest.approx(want, rel=1e-12), k
    assert "pass@32" not in s


def test_pass_at_k_includes_the_group_size():
    s = compute(rewards=[1, 0, 0, 0, 0, 0], group_ids=6).scalars
    assert [k for k in s if k.startswith("pass@")] == ["pass@1", "pass@2", "pass@4", "pass@6"]
    assert s["pass@6"] == 1.0 and s["pass@1"] == approx(1 / 6)
    s = compute(rewards=[1, 0, 0, 0, 0, 0], group_ids=6, config=StatsConfig(pass_at_k=(3,))).scalars
    assert s["pass@3"] == approx(0.5) and "pass@1" not in s


@pytest.mark.parametrize("ids", [
    IDS,
    np.array(IDS),
    np.array(IDS, dtype=object),
    [7, 7, 7, 7, 3, 3, 3, 3],
    np.array([7, 7, 7, 7, 3, 3, 3, 3]),
    4,
])
def test_group_ids_as_strings_ints_or_a_size(ids, basic):
    s = compute(advantages=ADV, rewards=REWARDS, group_ids=ids).scalars
    for name in ("difficulty/peak", "difficulty/no_signal_frac", "pass@2", "difficulty/solve_rate"):
        assert s[name] == approx(basic.scalars[name]), name


def test_unequal_and_interleaved_groups():
    # Group "x" = rollouts 0, 2, 5 (2 of 3 solved), "y" = 1, 3 (0 of 2), "z" = 4 (1 of 1).
    ids = ["x", "y", "x", "y", "z", "x"]
    r = [1, 0, 1, 0, 1, 0]
    s = compute(rewards=r, group_ids=ids).scalars
    assert s["difficulty/n_groups"] == 3
    assert s["difficulty/solve_rate"] == approx((2 / 3 + 0 + 1) / 3)
    assert s["difficulty/no_signal_frac"] == approx(2 / 3)
    assert s["pass@1"] == approx((2 / 3 + 0 + 1) / 3)
    assert s["pass@2"] == approx((1 - 0 + 1 - 1) / 2)  # x: 1 - C(1,2)/C(3,2) = 1; y: 0


def test_entropy_lengths_and_covariance():
    h = np.array([[1.0, 2, 9], [3, 9, 9]])
    lp = np.array([[-1.0, -2, 5], [-3, 5, 5]])
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32)
    s = compute(advantages=[1.0, -1.0], entropy=h, logprobs=lp, mask=mask)
    sc = s.scalars
    assert sc["entropy/mean"] == approx(2.0)
    assert (sc["entropy/seq_p10"], sc["entropy/seq_p50"], sc["entropy/seq_p90"]) == (
        approx(1.65), approx(2.25), approx(2.85))
    assert (sc["length/mean"], sc["length/min"], sc["length/max"]) == (1.5, 1.0, 2.0)
    # Tokens (log pi, A): (-1, 1), (-2, 1), (-3, -1).
    assert sc["entropy/cov_logp_adv"] == approx(2 / 3)
    hist = s.histograms["entropy"]
    assert (hist["lo"], hist["hi"], hist["bins"]) == (0.0, 8.0, 64)
    assert hist["count"] == 3 and hist["sum"] == 6 and hist["sum_sq"] == 14
    assert (hist["min"], hist["max"], hist["underflow"], hist["overflow"]) == (1, 3, 0, 0)
    assert [i for i, c in enumerate(hist["counts"]) if c] == [8, 16, 24]


def test_token_level_advantages():
    lp = np.array([[-1.0, -2, 0], [-3, 0, 0]])
    a_tok = np.array([[1.0, 3, 100], [-1, 100, 100]])
    mask = np.array([[True, True, False], [True, False, False]])
    s = compute(advantages=a_tok, logprobs=lp, mask=mask)
    sc = s.scalars
    # Per-rollout advantage = masked token mean: [2, -1].
    assert sc["adv/mean"] == approx(0.5) and (sc["adv/min"], sc["adv/max"]) == (-1.0, 2.0)
    assert sc["entropy/cov_logp_adv"] == approx(2 / 3)
    tok = s.histograms["advantages/token"]
    assert tok["count"] == 3 and tok["sum"] == 3 and (tok["min"], tok["max"]) == (-1, 3)
    assert s.histograms["advantages"]["count"] == 2


def test_ragged_token_lists_equal_padded_arrays():
    ent_rows = [[1.0, 2.0], [3.0], [0.5, 0.5, 0.5]]
    lp_rows = [[-1.0, -2.0], [-3.0], [-0.1, -0.2, -0.3]]
    padded = np.zeros((3, 3))
    lpp = np.zeros((3, 3))
    mask = np.zeros((3, 3))
    for i, (e, l) in enumerate(zip(ent_rows, lp_rows)):
        padded[i, :len(e)], lpp[i, :len(l)], mask[i, :len(e)] = e, l, 1
    adv = [1.0, -1.0, 0.5]
    a = compute(advantages=adv, entropy=ent_rows, logprobs=lp_rows)
    b = compute(advantages=adv, entropy=padded, logprobs=lpp, mask=mask)
    c = compute(advantages=adv, entropy=[np.array(r) for r in ent_rows], logprobs=lpp, mask=mask)
    for other in (b, c):
        for k in a.scalars:
            assert a.scalars[k] == approx(other.scalars[k]), k
        assert a.histograms["entropy"] == other.histograms["entropy"]


def test_no_mask_means_every_token_counts():
    s = compute(entropy=np.full((2, 4), 1.5)).scalars
    assert s["entropy/mean"] == 1.5 and s["length/mean"] == 4


def test_mask_nonzero_values_count_as_tokens():
    h = np.array([[1.0, 5.0]])
    assert compute(entropy=h, mask=np.array([[0.5, 0.0]])).scalars["entropy/mean"] == 1.0


def test_advantage_histogram_fields():
    adv = np.array([-5.0, -0.05, 0.0, 0.05, 3.99, 4.0, np.float64(1.0)])
    hist = compute(advantages=adv).histograms["advantages"]
    assert (hist["lo"], hist["hi"], hist["bins"]) == (-4.0, 4.0, 80)
    assert hist["underflow"] == 1 and hist["overflow"] == 1  # bins are [lo, hi): 4.0 overflows
    assert sum(hist["counts"]) + 2 == hist["count"] == 7
    assert hist["counts"][39] == 1 and hist["counts"][40] == 2 and hist["counts"][79] == 1
    assert hist["sum"] == approx(adv.sum()) and hist["sum_sq"] == approx((adv**2).sum())
    assert set(hist["quantiles"]) == {"0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99"}
    assert hist["quantiles"]["0.5"] == approx(np.quantile(adv, 0.5))
    assert hist["quantiles"]["0.99"] == approx(np.quantile(adv, 0.99))
    assert hist["labels"] is None


def test_histogram_specs_are_overridable():
    cfg = StatsConfig(histograms={"entropy": HistogramSpec(0.0, 2.0, 4)})
    hist = compute(entropy=np.array([[0.1, 0.6, 1.9, 2.5]]), config=cfg).histograms["entropy"]
    assert (hist["bins"], hist["counts"], hist["overflow"]) == (4, [1, 1, 0, 1], 1)
    # Quantiles of token histograms are read from the bins, within the data's range.
    assert 0.1 <= hist["quantiles"]["0.01"] <= hist["quantiles"]["0.5"] <= hist["quantiles"]["0.99"] <= 2.5


def test_rollouts_are_whole_groups():
    texts = [f"completion {i}" for i in range(8)]
    s = compute(advantages=ADV, rewards=REWARDS, group_ids=IDS, completions=texts)
    assert [g["group"] for g in s.rollouts] == ["a", "b"]  # the group with |A| mass first
    assert s.rollouts[0]["completions"][2] == {"text": "completion 2", "reward": 0.0, "advantage": -0.25}
    ids = np.arange(16).reshape(8, 2)
    mask = np.ones((8, 2))
    mask[0, 1] = 0
    s = compute(completions=ids, mask=mask, group_ids=4)
    texts = {g["group"]: [c["text"] for c in g["completions"]] for g in s.rollouts}
    assert texts == {0: ["0", "2 3", "4 5", "6 7"], 1: ["8 9", "10 11", "12 13", "14 15"]}  # no tokenizer: ids
    assert "reward" not in s.rollouts[0]["completions"][0]
    s = compute(completions=[[5, 6], [7]])
    assert sorted(g["completions"][0]["text"] for g in s.rollouts) == ["5 6", "7"]


def test_degenerate_inputs_give_none_not_nan():
    s = compute(advantages=np.zeros(6), rewards=np.ones(6), group_ids=3, entropy=np.ones((6, 2)),
                mask=np.zeros((6, 2)), logprobs=np.zeros((6, 2)))
    sc = s.scalars
    for name in ("sign/balance", "adv/kurtosis", "adv/max_abs_over_std", "difficulty/ess_frac",
                 "difficulty/peak", "entropy/mean", "entropy/seq_p50", "entropy/cov_logp_adv"):
        assert sc[name] is None, name
    assert sc["adv/std"] == 0 and sc["sign/m_pos"] == 0 and sc["difficulty/no_signal_frac"] == 1
    assert s.nonfinite == []
    assert s.histograms["entropy"]["count"] == 0 and s.histograms["entropy"]["min"] is None
    assert s.histograms["difficulty/mass_pos"]["quantiles"]["0.5"] is None
    # Equal non-zero advantages: no spread, so the ratios over the std are undefined.
    sc = compute(advantages=np.full(5, 0.1)).scalars
    assert sc["adv/kurtosis"] is None and sc["adv/max_abs_over_std"] is None
    assert sc["sign/balance"] == 1.0


def test_missing_inputs_leave_their_statistics_out():
    s = compute(advantages=ADV)
    assert "reward/mean" not in s.scalars and "difficulty/peak" not in s.scalars
    assert "sign/balance" in s.scalars and s.rollouts == []
    s = compute(rewards=REWARDS)
    assert "difficulty/n_groups" not in s.scalars and "pass@1" not in s.scalars
    assert compute() == StepStats()


def test_nonfinite_inputs_are_counted_left_out_and_flagged():
    adv = ADV.copy()
    adv[0] = np.nan
    s = compute(advantages=adv, rewards=REWARDS, group_ids=4)
    clean = compute(advantages=ADV[1:], rewards=REWARDS[1:])
    assert s.scalars["advantages/nonfinite"] == 1 and s.nonfinite == ["advantages/nonfinite"]
    assert s.scalars["rewards/nonfinite"] == 0
    for name in ("adv/mean", "adv/std", "sign/m_pos", "sign/m_neg", "sign/n_zero", "adv/frac_zero"):
        assert s.scalars[name] == pytest.approx(clean.scalars[name], rel=1e-12), name
    assert s.histograms["advantages"]["count"] == 7 and s.histograms["advantages"]["sum"] is not None
    ent = np.ones((2, 3))
    ent[1, 2] = np.inf
    s = compute(entropy=ent, mask=np.array([[1, 1, 1], [1, 1, 0]]))
    assert s.scalars["entropy/mean"] == 1.0 and s.nonfinite == []  # the Inf is padding
    assert s.scalars["entropy/nonfinite"] == 0
    s = compute(entropy=ent)
    assert s.scalars["entropy/mean"] == 1.0 and s.nonfinite == ["entropy/nonfinite"]
    assert s.scalars["entropy/nonfinite"] == 1 and s.histograms["entropy"]["count"] == 5


def test_extra_scalars_pass_through():
    from fadewatch.stats import Ratio

    s = compute(scalars={"loss": 0.5, "kl": np.float32(0.25), "bad": float("nan"), "gone": None,
                         "ratio": Ratio(1.0, 4.0), "undefined": Ratio(1.0, 0.0)})
    assert s.scalars == {"loss": 0.5, "kl": 0.25, "bad": None, "gone": None, "ratio": 0.25,
                         "undefined": None}
    assert s.nonfinite == ["bad"]


def test_the_three_calls_match_compute():
    cfg = StatsConfig(success_threshold=2.0)
    kw = dict(advantages=ADV, rewards=REWARDS, group_ids=IDS, completions=[str(i) for i in range(8)])
    red = reduce(prepare(**kw, config=cfg))
    assert red.to_host_async() is red  # a no-op off the GPU
    assert finalize(red) == compute(**kw, config=cfg)
    # A config given to reduce() replaces the one of prepare().
    assert finalize(reduce(prepare(**kw), cfg)).scalars["reward/success_rate"] == 0
