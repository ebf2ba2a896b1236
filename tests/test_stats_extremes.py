"""Huge, tiny and non-finite inputs: finite input never yields NaN, null or a lost step, and
NaN/Inf inputs are counted per input, left out and flagged, never read as failures or zeros.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fadewatch.stats.pipeline as pipeline
from fadewatch.stats import StatsConfig, compute
from fadewatch.stats.backend import TorchOps

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(3)
ADV = RNG.normal(size=64)
ADV[::7] = 0.0
REWARDS = (RNG.random(64) < 0.4).astype(np.float64)
ENT = RNG.random((64, 12)) * 3
MASK = (np.arange(12)[None, :] < RNG.integers(0, 13, 64)[:, None]).astype(np.float32)
# Scalars that scale with the advantages / rewards; every other one is scale-free.
ADV_LINEAR = {"adv/mean", "adv/std", "adv/min", "adv/max", "sign/m_pos", "sign/m_neg"}
REW_LINEAR = {"reward/mean", "reward/std", "reward/min", "reward/max"}
UNDEFINED_HERE = {"entropy/cov_logp_adv"}  # no log-probs given


@pytest.fixture(params=["numpy", "torch"])
def backend(request, monkeypatch):
    if request.param == "torch":
        monkeypatch.setattr(pipeline, "ops_for", lambda *arrays: TorchOps("cpu"))
    return request.param


def stats(backend, **kw):
    if backend == "torch":
        kw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return compute(**kw)


@pytest.mark.parametrize("scale", [1e300, 1e160, 1e80, 1e-300])
def test_huge_and_tiny_advantages_and_rewards_keep_every_statistic(scale, backend):
    cfg = StatsConfig(zero_tol=0.0)  # at 1e-300 every advantage is below the default tolerance
    base = stats(backend, advantages=ADV, rewards=REWARDS * 0.8, group_ids=8, config=cfg)
    got = stats(backend, advantages=ADV * scale, rewards=REWARDS * 0.8 * scale, group_ids=8,
                config=StatsConfig(zero_tol=0.0, success_threshold=0.5 * scale))
    assert got.nonfinite == []
    for name, want in base.scalars.items():
        value = got.scalars[name]
        assert (value is None) == (want is None), name
        if want is None:
            continue
        factor = scale if name in ADV_LINEAR | REW_LINEAR else 1.0
        assert value == pytest.approx(want * factor, rel=1e-9, abs=0 if factor != 1 else 1e-12), name


def test_a_step_with_advantages_of_1e160_keeps_its_sign_axis():
    a = np.array([1e160, -1e160, 3e159, 0.0, -2e160, 5e159, 0.0, 1e160])
    s = compute(advantages=a, rewards=np.ones(8), group_ids=4).scalars
    assert s["sign/m_pos"] == pytest.approx(2.8e160 / 8) and s["sign/m_neg"] == pytest.approx(3e160 / 8)
    assert s["sign/balance"] == pytest.approx(-0.2 / 5.8)
    assert s["difficulty/ess_frac"] == pytest.approx(5.8**2 / (1 + 1 + 0.09 + 4 + 0.25 + 1) / 8)
    assert all(v is not None for k, v in s.items() if not k.startswith("entropy"))


def test_kurtosis_of_huge_advantages_is_finite():
    s = compute(advantages=ADV * 1e200).scalars
    assert s["adv/kurtosis"] == pytest.approx(compute(advantages=ADV).scalars["adv/kurtosis"], rel=1e-9)


def test_a_nan_reward_is_flagged_and_not_counted_as_a_failure(backend):
    r = np.array([1.0, 1.0, np.nan, 1.0, 0.0, 0.0, 0.0, 1.0])
    s = stats(backend, rewards=r, advantages=np.zeros(8), group_ids=4)
    assert s.scalars["rewards/nonfinite"] == 1 and "rewards/nonfinite" in s.nonfinite
    assert s.scalars["reward/success_rate"] == pytest.approx(4 / 7)
    assert s.scalars["reward/mean"] == pytest.approx(4 / 7)
    # Group 0 is three successes out of three finite rewards: all solved, pass@1 = 1.
    assert s.scalars["difficulty/solve_rate"] == pytest.approx((1.0 + 0.25) / 2)
    assert s.scalars["pass@1"] == pytest.approx((1.0 + 0.25) / 2)
    assert s.scalars["pass@4"] == pytest.approx(1.0)  # only group 1 has four finite rewards
    assert s.scalars["difficulty/no_signal_frac"] == pytest.approx(0.5)
    assert s.histograms["difficulty/groups"]["counts"][-1] == 1.0


def test_a_group_of_only_nan_rewards_is_left_out():
    r = np.array([np.nan, np.nan, 1.0, 0.0])
    s = compute(rewards=r, group_ids=2)
    assert s.scalars["difficulty/n_groups"] == 1 and s.scalars["difficulty/solve_rate"] == 0.5
    assert s.scalars["rewards/nonfinite"] == 2
    s = compute(rewards=np.full(4, np.nan), group_ids=2)
    assert s.scalars["reward/mean"] is None and s.scalars["difficulty/solve_rate"] is None
    assert s.nonfinite == ["rewards/nonfinite"]


def test_nan_and_inf_advantages_are_not_zeros_and_quantiles_skip_them(backend):
    a = np.array([np.nan, 0.0, 1.0, -1.0, np.inf, 2.0, 0.0, -np.inf, 0.5, -0.5])
    s = stats(backend, advantages=a)
    finite = a[np.isfinite(a)]
    assert s.scalars["advantages/nonfinite"] == 3 and s.nonfinite == ["advantages/nonfinite"]
    assert s.scalars["sign/n_zero"] == 2 and s.scalars["adv/frac_zero"] == pytest.approx(2 / 7)
    assert s.scalars["adv/max"] == 2.0 and s.scalars["adv/min"] == -1.0
    h = s.histograms["advantages"]
    assert h["count"] == 7 and h["overflow"] == 0 and h["underflow"] == 0
    for key, value in h["quantiles"].items():
        assert value == pytest.approx(float(np.quantile(finite, float(key))), rel=1e-12), key


def test_nan_tokens_are_counted_and_left_out(backend):
    ent = ENT.copy()
    lp = -ENT.copy()
    real = MASK > 0
    rows, cols = np.nonzero(real)
    ent[rows[3], cols[3]] = np.nan
    ent[rows[9], cols[9]] = np.inf
    lp[rows[5], cols[5]] = np.nan
    s = stats(backend, entropy=ent, logprobs=lp, mask=MASK, advantages=ADV)
    assert s.scalars["entropy/nonfinite"] == 2 and s.scalars["logprobs/nonfinite"] == 1
    assert sorted(s.nonfinite) == ["entropy/nonfinite", "logprobs/nonfinite"]
    keep = real & np.isfinite(ent)
    assert s.scalars["entropy/mean"] == pytest.approx(ent[keep].mean(), rel=1e-6)
    assert s.histograms["entropy"]["count"] == keep.sum()
    both = real & np.isfinite(lp)
    a = np.broadcast_to(ADV[:, None], lp.shape)[both]
    cov = np.mean((lp[both] - lp[both].mean()) * (a - a.mean()))
    assert s.scalars["entropy/cov_logp_adv"] == pytest.approx(cov, rel=1e-5)


def test_nan_token_advantages_are_counted_per_token(backend):
    a = RNG.normal(size=(6, 5))
    a[0, 1] = np.nan
    a[2, :] = np.nan  # a rollout with no finite token advantage is left out, not a zero
    s = stats(backend, advantages=a, mask=np.ones((6, 5), dtype=np.float32))
    assert s.scalars["advantages/nonfinite"] == 6 and s.nonfinite == ["advantages/nonfinite"]
    means = [np.nanmean(row) for i, row in enumerate(a) if i != 2]
    assert s.scalars["adv/mean"] == pytest.approx(np.mean(means), rel=1e-6)
    assert s.histograms["advantages/token"]["count"] == 24


def test_clean_inputs_report_zero_nonfinite_counts():
    s = compute(advantages=ADV, rewards=REWARDS, entropy=ENT, logprobs=-ENT, mask=MASK, group_ids=8)
    assert s.nonfinite == []
    for name in ("advantages/nonfinite", "rewards/nonfinite", "entropy/nonfinite", "logprobs/nonfinite"):
        assert s.scalars[name] == 0
    assert all(v is None or math.isfinite(v) for v in s.scalars.values())
