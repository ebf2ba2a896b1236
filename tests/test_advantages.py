"""Advantage estimators against the closed forms of METRICS.md, on numpy and torch."""

import math

import numpy as np
import pytest

from fadewatch import advantages as adv
from fadewatch.errors import UsageError

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

PS = [0.1, 0.25, 0.5, 0.75, 0.9]
N = 1000  # group size: success rates p above are exact multiples of 1/N


def group_with_rate(p, n=N):
    k = round(p * n)
    return np.array([1.0] * k + [0.0] * (n - k))


def masses(a):
    a = np.asarray(a, dtype=np.float64)
    return a[a > 0].sum() / a.size, -a[a < 0].sum() / a.size


def closed_form(name, p, G=N):
    q = 1 - p
    return {
        "psr": (p, 0.0),
        "nsr": (0.0, q),
        "w_reinforce": (0.1 * p, q),
        "dr_grpo": (p * q, p * q),
        "rloo": (G / (G - 1) * p * q, G / (G - 1) * p * q),
        "grpo": (math.sqrt(p * q), math.sqrt(p * q)),
        "maxrl": (q, q),
        "f_grpo": (q * math.sqrt(p * q), q * math.sqrt(p * q)),  # gamma = 1
    }[name]


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("name", sorted(set(adv.ESTIMATORS) - {"fade"}))
def test_sign_masses_match_metrics_table(name, p):
    r = group_with_rate(p)
    m_s, m_f = masses(adv.get(name)(r, N))
    want_s, want_f = closed_form(name, p)
    assert m_s == pytest.approx(want_s, rel=1e-4, abs=1e-9)
    assert m_f == pytest.approx(want_f, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("p", PS)
def test_several_groups_with_the_same_rate_give_the_same_masses(p):
    r = np.concatenate([np.random.default_rng(i).permutation(group_with_rate(p, 200)) for i in range(5)])
    m_s, m_f = masses(adv.grpo(r, 200))
    assert m_s == pytest.approx(math.sqrt(p * (1 - p)), rel=1e-4)
    assert m_f == pytest.approx(math.sqrt(p * (1 - p)), rel=1e-4)


@pytest.mark.parametrize("alpha", [1.0, 1.5, 3.0])
@pytest.mark.parametrize("delta", [1.0, 0.5, 0.3])
@pytest.mark.parametrize("p", PS)
def test_fade_masses_closed_form(p, alpha, delta):
    # success: q^(α−1)·q, failure: −q^(α−1)·p/δ  →  m_S = p·q^α, m_F = p·q^α/δ
    q = 1 - p
    m_s, m_f = masses(adv.fade(group_with_rate(p), N, alpha=alpha, delta=delta))
    assert m_s == pytest.approx(p * q**alpha, rel=1e-9)
    assert m_f == pytest.approx(p * q**alpha / delta, rel=1e-9)


def test_grpo_values_and_unbiased_option():
    a = adv.grpo([1, 0, 0, 0], 4, eps=0.0)
    assert a == pytest.approx([math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3)])
    b = adv.grpo([1, 0, 0, 0], 4, eps=0.0, unbiased_std=True)
    assert b == pytest.approx(a * math.sqrt(3 / 4))


def test_rloo_is_leave_one_out():
    r = np.array([1.0, 0.0, 1.0, 1.0])
    loo = np.array([r[i] - np.delete(r, i).mean() for i in range(4)])
    assert adv.rloo(r, 4) == pytest.approx(loo)


def test_w_reinforce_lambda_and_threshold():
    assert adv.w_reinforce([0.7, 0.2], lam=0.3) == pytest.approx([0.3, -1.0])
    assert adv.psr([0.7, 0.2], success_threshold=0.8) == pytest.approx([0.0, 0.0])
    assert adv.nsr([0.7, 0.2]) == pytest.approx([0.0, -1.0])


RNG = np.random.default_rng(0)
REWARDS = (RNG.random(24) < 0.4).astype(float)
MIXED_IDS = np.repeat([3, 11, 5, 8], [4, 7, 2, 11])  # unequal, not sorted by value


@pytest.mark.parametrize("name", sorted(adv.ESTIMATORS))
def test_torch_and_numpy_agree(name):
    want = adv.get(name)(REWARDS, MIXED_IDS)
    for dtype in (torch.float32, torch.float64):
        got = adv.get(name)(torch.tensor(REWARDS, dtype=dtype), torch.tensor(MIXED_IDS))
        assert isinstance(got, torch.Tensor) and got.dtype == dtype and got.shape == (24,)
        assert got.double().numpy() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert isinstance(want, np.ndarray) and want.dtype == np.float64


def test_torch_int_rewards_and_list_inputs():
    got = adv.dr_grpo(torch.tensor([1, 0, 0, 1]), [0, 0, 1, 1])
    assert got.dtype == torch.get_default_dtype()
    assert got.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5])
    assert isinstance(adv.dr_grpo([1, 0, 0, 1], 2), np.ndarray)


@pytest.mark.parametrize("name", sorted(adv.ESTIMATORS))
def test_string_ids_equal_int_ids_and_group_size(name):
    codes = np.repeat(np.arange(4), 6)
    strings = np.array(["prompt-%d" % c for c in codes], dtype=object)
    by_int = adv.get(name)(REWARDS, codes)
    assert adv.get(name)(REWARDS, strings) == pytest.approx(by_int)
    assert adv.get(name)(REWARDS, list(strings)) == pytest.approx(by_int)
    assert adv.get(name)(REWARDS, 6) == pytest.approx(by_int)


def test_unequal_groups_use_their_own_statistics():
    ids = MIXED_IDS
    a = adv.grpo(REWARDS, ids, eps=0.0)
    for g in np.unique(ids):
        r = REWARDS[ids == g]
        want = (r - r.mean()) / r.std() if r.std() > 0 else np.zeros_like(r)
        assert a[ids == g] == pytest.approx(want)


@pytest.mark.parametrize("name", sorted(adv.ESTIMATORS))
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_degenerate_groups_are_finite(name, value):
    r = np.full(8, value)
    a = adv.get(name)(r, 4)
    assert np.isfinite(a).all()
    if name not in ("psr", "nsr", "w_reinforce"):  # sign-only estimators need no contrast
        assert (a == 0).all()
    t = adv.get(name)(torch.tensor(r), 4)
    assert torch.isfinite(t).all()


def test_singleton_groups_are_finite():
    for name in adv.ESTIMATORS:
        assert np.isfinite(adv.get(name)([1.0, 0.0, 1.0], [0, 1, 2])).all()


def test_empty_batch():
    assert adv.grpo(np.zeros(0), np.zeros(0, dtype=int)).shape == (0,)


@pytest.mark.parametrize(
    "call",
    [
        lambda: adv.grpo([[1.0, 0.0]], 2),
        lambda: adv.grpo([1.0, 0.0, 1.0], 2),
        lambda: adv.grpo([1.0, 0.0, 1.0], [0, 1]),
        lambda: adv.grpo([1.0, 0.0], None),
        lambda: adv.grpo(torch.ones(2), torch.tensor([0.5, 1.5])),
        lambda: adv.get("ppo"),
        lambda: adv.fade([1.0, 0.0], 2, delta=0.0),
        lambda: adv.FadeAdvantage(ema_weight=2.0),
        lambda: adv.FadeAdvantage()([1.0, 0.0], 2, entropy=float("nan")),
    ],
)
def test_misuse_raises_usage_error(call):
    with pytest.raises(UsageError):
        call()


def test_unknown_estimator_message_lists_choices():
    with pytest.raises(UsageError, match="grpo"):
        adv.get("nope")


# --- FADE schedule ---------------------------------------------------------------


def test_fade_alpha_at_known_points():
    assert adv.fade_alpha(0.5) == pytest.approx(1.5)
    assert adv.fade_alpha(0.25) == 3.0  # 4.5 clipped at α_max
    assert adv.fade_alpha(0.9) == 1.0  # 1/6 clipped at 1
    assert adv.fade_alpha(0.25, alpha_max=5.0) == pytest.approx(4.5)
    assert adv.fade_alpha(0.0) == 3.0


def test_fade_delta_at_known_points():
    assert adv.fade_delta(1.5) == 1.0
    assert adv.fade_delta(0.8) == pytest.approx(0.8)
    assert adv.fade_delta(0.1) == pytest.approx(0.3)  # 0.1 clipped at δ_min
    assert adv.fade_delta(0.8, target_entropy=1.2, delta_min=0.5) == pytest.approx(0.6)


def test_fade_scheduler_starts_balanced_at_half():
    f = adv.FadeAdvantage()
    assert f.solve_rate_ema == 0.5 and f.alpha == pytest.approx(1.5)
    assert f.delta == 1.0 and f.entropy_ema is None


def test_fade_scheduler_ema_updates():
    f = adv.FadeAdvantage()
    f(np.array([1.0, 0.0, 0.0, 0.0]), 4, entropy=2.0)
    assert f.entropy_ema == 2.0  # first entropy starts the EMA
    assert f.solve_rate_ema == pytest.approx(0.98 * 0.5 + 0.02 * 0.25)
    assert f.alpha == pytest.approx(adv.fade_alpha(f.solve_rate_ema))
    f(np.array([1.0, 0.0, 0.0, 0.0]), 4, entropy=torch.tensor(1.0))
    assert f.entropy_ema == pytest.approx(0.98 * 2.0 + 0.02 * 1.0)
    assert f.delta == 1.0


def test_fade_scheduler_hard_batches_reach_alpha_max():
    f = adv.FadeAdvantage(initial_solve_rate=0.25, ema_weight=0.0)
    assert f.alpha == 3.0
    f = adv.FadeAdvantage(ema_weight=0.5)
    for _ in range(30):
        f(group_with_rate(0.25, 8), 8)
    assert f.solve_rate_ema == pytest.approx(0.25) and f.alpha == 3.0


def test_fade_scheduler_low_entropy_suppresses_failures():
    f = adv.FadeAdvantage(initial_entropy=0.8, ema_weight=0.0)
    assert f.delta == pytest.approx(0.8)
    a = f(np.array([1.0, 0.0]), 2, entropy=0.8)
    # r̄ = 0.5, α = 1.5: weight 0.5^0.5, failure divided by δ
    w = 0.5**0.5
    assert a == pytest.approx([0.5 * w, -0.5 * w / 0.8])
    f = adv.FadeAdvantage(initial_entropy=0.05, ema_weight=0.0)
    assert f.delta == pytest.approx(0.3)
    f = adv.FadeAdvantage(ema_weight=1.0, target_entropy=2.0, delta_min=0.5)
    f([1.0, 0.0], 2, entropy=1.2)
    assert f.delta == pytest.approx(0.5)


def test_fade_scheduler_torch_on_device_and_state():
    f = adv.get("fade", target_entropy=0.5)
    assert isinstance(f, adv.FadeAdvantage) and f.target_entropy == 0.5
    out = f(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1]), entropy=0.4)
    assert isinstance(out, torch.Tensor) and out.device == torch.device("cpu")
    assert set(f.state()) == {"alpha", "delta", "solve_rate_ema", "entropy_ema"}
    assert all(math.isfinite(v) for v in f.state().values())


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, fadewatch.advantages as a; a.grpo([1, 0], 2); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
