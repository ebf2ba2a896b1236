"""Every estimator in every dtype on every device at hand: the caller's dtype comes back, a
constant group gets exactly zero, and the values match float64 arithmetic on the same rewards.
"""

from __future__ import annotations

import numpy as np
import pytest

from fadewatch import advantages as adv
from fadewatch.errors import UsageError

torch = pytest.importorskip("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TORCH_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
CENTRED = {"grpo", "dr_grpo", "rloo", "maxrl", "f_grpo", "fade"}
G = 8
# Continuous rewards; groups 0 and 1 are constant at values no binary float holds exactly.
REWARDS = np.concatenate([np.full(G, 0.1), np.full(G, 0.7), np.linspace(0.05, 0.95, G),
                          [0.3, 0.9, 0.1, 0.6, 0.2, 0.8, 0.4, 0.35], np.full(G, 1.0), np.zeros(G)])


def estimator(name: str):
    if name == "fade":
        return lambda r, g: adv.fade(r, g, alpha=2.0, delta=0.5)
    return adv.get(name)


def reference(name: str, r: np.ndarray) -> np.ndarray:
    """float64 arithmetic on the rewards exactly as the caller's dtype holds them."""
    return np.asarray(estimator(name)(r.astype(np.float64), G), dtype=np.float64)


def tolerance(dtype) -> float:
    return {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(set(adv.ESTIMATORS) - {"fade"} | {"fade"}))
def test_torch_estimators_keep_the_dtype_and_zero_constant_groups(name, dtype, device):
    r = torch.tensor(REWARDS, dtype=dtype, device=device)
    got = estimator(name)(r, G)
    assert got.dtype == dtype and got.device.type == device
    held = r.double().cpu().numpy()
    want = reference(name, held)
    out = got.double().cpu().numpy()
    if name in CENTRED:
        assert (out[:2 * G] == 0).all(), out[:2 * G]  # exactly, not approximately
        assert (out[-2 * G:] == 0).all()
    scale = max(1.0, np.abs(want).max())
    np.testing.assert_allclose(out, want, rtol=tolerance(dtype), atol=tolerance(dtype) * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name", sorted(set(adv.ESTIMATORS) - {"fade"} | {"fade"}))
def test_numpy_estimators_keep_the_dtype_and_zero_constant_groups(name, dtype):
    r = REWARDS.astype(dtype)
    got = estimator(name)(r, G)
    assert got.dtype == dtype
    if name in CENTRED:
        assert (got[:2 * G] == 0).all() and (got[-2 * G:] == 0).all()
    want = reference(name, r)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=5e-3, atol=5e-3 * np.abs(want).max())


def test_lists_and_integer_rewards_give_float64():
    assert adv.grpo([1, 0, 0, 0], 4).dtype == np.float64
    assert adv.grpo(np.array([1, 0, 1, 1]), 2).dtype == np.float64
    assert adv.grpo(torch.tensor([1, 0, 1, 1]), 2).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grpo_gives_a_constant_continuous_group_exactly_zero(dtype):
    r = torch.tensor([0.3] * 16 + [0.2, 0.9] * 8, dtype=dtype)
    a = adv.grpo(r, 16)
    assert a.dtype == dtype and torch.equal(a[:16], torch.zeros(16, dtype=dtype))
    assert a[16:].abs().min() > 0.9


def test_fade_stays_finite_for_alpha_below_one_and_follows_the_mean_reward():
    r = np.array([1.0, 1.0, 1.0, 1.0, 0.4, 0.4, 0.6, 0.2])
    a = adv.fade(r, 4, alpha=0.5)
    assert np.isfinite(a).all() and (a[:4] == 0).all()
    f = adv.FadeAdvantage(ema_weight=1.0)
    f(np.full(8, 0.4), 4)
    assert f.solve_rate_ema == pytest.approx(0.4)  # the paper's p̂: the mean reward, not 0
    f = adv.FadeAdvantage(ema_weight=1.0, success_threshold=0.5)
    f(np.full(8, 0.4), 4)
    assert f.solve_rate_ema == 0.0
    f = adv.FadeAdvantage(ema_weight=1.0)
    f(np.array([np.nan, 1.0, 0.0, 1.0]), 2)
    assert f.solve_rate_ema == pytest.approx(2 / 3)  # the NaN reward is left out of p̂
    with pytest.raises(UsageError, match="alpha"):
        adv.fade(r, 4, alpha=float("nan"))
