"""Group-relative advantage estimators (GRPO, Dr. GRPO, RLOO, PSR, NSR, W-REINFORCE,
MaxRL, F-GRPO) and the FADE advantage scheduler.

Every estimator takes ``rewards`` ([N] torch tensor on any device, numpy array or list)
and ``group_ids`` ([N] ints or strings, or an int G meaning consecutive blocks of G
rollouts per prompt) and returns [N] advantages: a torch tensor on the rewards' device
for torch input, a float64 numpy array otherwise. Group statistics are segment sums over
group codes; nothing loops over rollouts in Python and nothing syncs with the GPU.

    >>> from fadewatch import advantages
    >>> advantages.grpo([1, 0, 0, 0], group_ids=4)
    array([ 1.7320...,  -0.5773..., -0.5773..., -0.5773...])
    >>> fade = advantages.get("fade")           # stateful: one per training run
    >>> adv = fade(rewards, group_ids, entropy=mean_token_entropy)
    >>> fade.alpha, fade.delta

NaN rewards give NaN advantages for their group; the hook's non-finite alert reports it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from fadewatch.errors import UsageError

__all__ = [
    "ESTIMATORS",
    "FadeAdvantage",
    "dr_grpo",
    "f_grpo",
    "fade",
    "fade_alpha",
    "fade_delta",
    "get",
    "grpo",
    "maxrl",
    "nsr",
    "psr",
    "rloo",
    "w_reinforce",
]


def _is_torch(x: Any) -> bool:
    # Checked by type name so that numpy/list callers never import torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


class _Batch:
    """Rewards as float, their group codes, and segment-sum helpers for one backend."""

    def __init__(self, rewards: Any, group_ids: Any, *, need_groups: bool):
        self.torch = _is_torch(rewards)
        if self.torch:
            import torch

            r = rewards.detach()
            if not torch.is_floating_point(r):
                r = r.to(torch.get_default_dtype())
        else:
            try:
                r = np.asarray(rewards, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"rewards must be numbers, got {rewards!r:.80}") from exc
        if r.ndim != 1:
            raise UsageError(
                f"rewards must be 1-D [N] (one reward per rollout), got shape {tuple(r.shape)}"
            )
        self.r = r
        self.n = int(r.shape[0])
        self.codes = None
        self.n_groups = 0
        if group_ids is not None or need_groups:
            self.codes, self.n_groups = self._group_codes(group_ids)

    def _group_codes(self, group_ids: Any) -> tuple[Any, int]:
        if group_ids is None:
            raise UsageError(
                "this estimator needs group_ids: pass one id per rollout, or an int G "
                "for consecutive groups of G rollouts"
            )
        if isinstance(group_ids, (int, np.integer)) and not isinstance(group_ids, bool):
            g = int(group_ids)
            if g < 1 or self.n % g:
                raise UsageError(
                    f"group size G={g} must be >= 1 and divide the number of rollouts N={self.n}"
                )
            codes = self._arange() // g
            return codes, self.n // g
        if _is_torch(group_ids):
            import torch

            if torch.is_floating_point(group_ids) or group_ids.ndim != 1:
                raise UsageError("group_ids as a tensor must be a 1-D integer tensor")
            if self.torch:
                uniques, codes = torch.unique(group_ids.to(self.r.device), return_inverse=True)
                return codes, len(uniques)
            group_ids = group_ids.cpu().numpy()
        ids = np.asarray(group_ids)
        if ids.ndim != 1 or ids.shape[0] != self.n:
            raise UsageError(
                f"group_ids must have one id per rollout ([{self.n}]), got shape {ids.shape}"
            )
        uniques, codes = np.unique(ids, return_inverse=True)
        codes = codes.reshape(-1)
        if self.torch:
            import torch

            codes = torch.as_tensor(codes, dtype=torch.long, device=self.r.device)
        return codes, len(uniques)

    def _arange(self) -> Any:
        if self.torch:
            import torch

            return torch.arange(self.n, device=self.r.device)
        return np.arange(self.n)

    def segment_sum(self, x: Any) -> Any:
        """Sum of x per group, shape [n_groups]."""
        if self.torch:
            import torch

            out = torch.zeros(self.n_groups, dtype=x.dtype, device=x.device)
            return out.index_add_(0, self.codes, x)
        return np.bincount(self.codes, weights=x, minlength=self.n_groups)

    def group_size(self) -> Any:
        return self.segment_sum(self.ones())

    def group_mean(self, x: Any) -> Any:
        """Mean of x over each rollout's group, broadcast back to shape [N]."""
        return (self.segment_sum(x) / self.group_size())[self.codes]

    def ones(self) -> Any:
        return self.r * 0 + 1

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if self.torch:
            import torch

            return torch.where(cond, a, b)
        return np.where(cond, a, b)

    def success(self, threshold: float) -> Any:
        return (self.r >= threshold) * 1.0

    def finish(self, adv: Any) -> Any:
        if self.torch:
            return adv.to(self.r.dtype)
        return np.asarray(adv, dtype=np.float64)


def _std(b: _Batch, centred: Any, unbiased: bool) -> Any:
    ss = b.segment_sum(centred * centred)
    size = b.group_size()
    denom = size - 1 if unbiased else size
    denom = b.where(denom > 0, denom, denom * 0 + 1)
    return ((ss / denom) ** 0.5)[b.codes]


def _scale_by_std(b: _Batch, centred: Any, eps: float, unbiased: bool) -> Any:
    # Groups with zero spread have centred == 0; keep them at 0 even when eps is 0.
    denom = _std(b, centred, unbiased) + eps
    ok = denom > 0
    return b.where(ok, centred / b.where(ok, denom, denom * 0 + 1), centred * 0)


def dr_grpo(rewards: Any, group_ids: Any) -> Any:
    """Dr. GRPO: reward minus its group mean, no scaling."""
    b = _Batch(rewards, group_ids, need_groups=True)
    return b.finish(b.r - b.group_mean(b.r))


def grpo(rewards: Any, group_ids: Any, *, eps: float = 1e-6, unbiased_std: bool = False) -> Any:
    """GRPO: (r − group mean) / (group std + eps); population std unless unbiased_std."""
    b = _Batch(rewards, group_ids, need_groups=True)
    return b.finish(_scale_by_std(b, b.r - b.group_mean(b.r), eps, unbiased_std))


def rloo(rewards: Any, group_ids: Any) -> Any:
    """RLOO: reward minus the mean of the other G−1 rollouts; zero for singleton groups."""
    b = _Batch(rewards, group_ids, need_groups=True)
    size = b.group_size()[b.codes]
    scale = b.where(size > 1, size / b.where(size > 1, size - 1, size), size * 0)
    return b.finish(scale * (b.r - b.group_mean(b.r)))


def psr(rewards: Any, group_ids: Any = None, *, success_threshold: float = 0.5) -> Any:
    """Positive-only REINFORCE on success: 1 for success, 0 otherwise."""
    b = _Batch(rewards, group_ids, need_groups=False)
    return b.finish(b.success(success_threshold))


def nsr(rewards: Any, group_ids: Any = None, *, success_threshold: float = 0.5) -> Any:
    """Negative-only: 0 for success, −1 for failure."""
    b = _Batch(rewards, group_ids, need_groups=False)
    return b.finish(b.success(success_threshold) - 1.0)


def w_reinforce(
    rewards: Any, group_ids: Any = None, *, lam: float = 0.1, success_threshold: float = 0.5
) -> Any:
    """W-REINFORCE: λ for success, −1 for failure."""
    b = _Batch(rewards, group_ids, need_groups=False)
    s = b.success(success_threshold)
    return b.finish(lam * s - (1.0 - s))


def maxrl(rewards: Any, group_ids: Any, *, eps: float = 1e-8) -> Any:
    """MaxRL: (r − r̄_g) / r̄_g; groups whose mean is at most eps (all failed) get zeros."""
    b = _Batch(rewards, group_ids, need_groups=True)
    mean = b.group_mean(b.r)
    ok = mean > eps
    safe = b.where(ok, mean, mean * 0 + 1)
    return b.finish(b.where(ok, (b.r - mean) / safe, mean * 0))


def f_grpo(
    rewards: Any,
    group_ids: Any,
    *,
    gamma: float = 1.0,
    eps: float = 1e-6,
    success_threshold: float = 0.5,
    unbiased_std: bool = False,
) -> Any:
    """F-GRPO (focal): GRPO scaled by (1 − p̂_g)^γ, p̂_g the group's success rate."""
    b = _Batch(rewards, group_ids, need_groups=True)
    adv = _scale_by_std(b, b.r - b.group_mean(b.r), eps, unbiased_std)
    p_hat = b.group_mean(b.success(success_threshold))
    return b.finish((1.0 - p_hat) ** gamma * adv)


def fade_alpha(solve_rate: float, alpha_max: float = 3.0) -> float:
    """FADE difficulty exponent α = clip(3(1 − p̂)/(2p̂), 1, α_max) (reconstructed)."""
    if solve_rate <= 0.0:
        return float(alpha_max)
    return float(min(max(3.0 * (1.0 - solve_rate) / (2.0 * solve_rate), 1.0), alpha_max))


def fade_delta(entropy: float, target_entropy: float = 1.0, delta_min: float = 0.3) -> float:
    """FADE sign factor δ = clip(1 + Ĥ − H*, δ_min, 1) (reconstructed)."""
    return float(min(max(1.0 + entropy - target_entropy, delta_min), 1.0))


def fade(rewards: Any, group_ids: Any, *, alpha: float = 3.0, delta: float = 1.0) -> Any:
    """FADE advantage for fixed α and δ (reconstructed from the FADE paper).

    A = (1 − r̄_g)^(α−1)·(r − r̄_g), divided by δ where r < r̄_g. Rewards are expected in
    [0, 1]; 1 − r̄_g is floored at 0. ``FadeAdvantage`` schedules α and δ during training.
    """
    if not delta > 0:
        raise UsageError(f"FADE needs delta > 0, got {delta}")
    b = _Batch(rewards, group_ids, need_groups=True)
    mean = b.group_mean(b.r)
    base = 1.0 - mean
    weight = b.where(base > 0, base, base * 0) ** (alpha - 1.0)
    centred = b.r - mean
    return b.finish(weight * b.where(centred >= 0, centred, centred / delta))


class FadeAdvantage:
    """The FADE advantage with its α and δ schedules (reconstructed from the FADE paper).

    α = clip(3(1 − p̂)/(2p̂), 1, α_max) from an EMA p̂ of the batch solve rate, δ =
    clip(1 + Ĥ − H*, δ_min, 1) from an EMA Ĥ of the mean token entropy. Each call first
    folds the batch into both EMAs, then computes advantages with the new α and δ. The
    current ``alpha``, ``delta``, ``solve_rate_ema`` and ``entropy_ema`` are attributes
    a trainer can log. Without any entropy given, δ stays 1.
    """

    def __init__(
        self,
        *,
        alpha_max: float = 3.0,
        delta_min: float = 0.3,
        target_entropy: float = 1.0,
        ema_weight: float = 0.02,
        initial_solve_rate: float = 0.5,
        initial_entropy: float | None = None,
        success_threshold: float = 0.5,
    ):
        if not 0.0 <= ema_weight <= 1.0:
            raise UsageError(f"ema_weight must be in [0, 1], got {ema_weight}")
        if not 0.0 < delta_min <= 1.0:
            raise UsageError(f"delta_min must be in (0, 1], got {delta_min}")
        if not alpha_max >= 1.0:
            raise UsageError(f"alpha_max must be >= 1, got {alpha_max}")
        if not 0.0 <= initial_solve_rate <= 1.0:
            raise UsageError(f"initial_solve_rate must be in [0, 1], got {initial_solve_rate}")
        self.alpha_max = float(alpha_max)
        self.delta_min = float(delta_min)
        self.target_entropy = float(target_entropy)
        self.ema_weight = float(ema_weight)
        self.success_threshold = float(success_threshold)
        self.solve_rate_ema = float(initial_solve_rate)
        self.entropy_ema = None if initial_entropy is None else float(initial_entropy)
        self._refresh()

    def _refresh(self) -> None:
        self.alpha = fade_alpha(self.solve_rate_ema, self.alpha_max)
        if self.entropy_ema is None:
            self.delta = 1.0
        else:
            self.delta = fade_delta(self.entropy_ema, self.target_entropy, self.delta_min)

    def update(self, solve_rate: float, entropy: float | None = None) -> None:
        """Fold one batch's solve rate and mean token entropy into the EMAs."""
        w = self.ema_weight
        self.solve_rate_ema = (1.0 - w) * self.solve_rate_ema + w * float(solve_rate)
        if entropy is not None:
            h = float(entropy)
            if not math.isfinite(h):
                raise UsageError(f"entropy must be a finite mean token entropy, got {h}")
            self.entropy_ema = h if self.entropy_ema is None else (1.0 - w) * self.entropy_ema + w * h
        self._refresh()

    def __call__(self, rewards: Any, group_ids: Any, entropy: Any = None) -> Any:
        """Advantages for one batch; ``entropy`` is its mean token entropy (a float)."""
        b = _Batch(rewards, group_ids, need_groups=False)
        if b.n:
            # One host sync per step for the solve rate: the schedule needs it as a float.
            solve_rate = float(b.success(self.success_threshold).mean())
            self.update(solve_rate, None if entropy is None else float(entropy))
        return fade(rewards, group_ids, alpha=self.alpha, delta=self.delta)

    def state(self) -> dict[str, float]:
        """The scalars worth logging each step."""
        return {
            "alpha": self.alpha,
            "delta": self.delta,
            "solve_rate_ema": self.solve_rate_ema,
            "entropy_ema": float("nan") if self.entropy_ema is None else self.entropy_ema,
        }


ESTIMATORS: dict[str, Callable[..., Any]] = {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "psr": psr,
    "nsr": nsr,
    "w_reinforce": w_reinforce,
    "maxrl": maxrl,
    "f_grpo": f_grpo,
    "fade": FadeAdvantage,  # stateful: the entry is its factory
}


def get(name: str, **params: Any) -> Callable[..., Any]:
    """A ready estimator ``est(rewards, group_ids)`` by name, with its keyword parameters.

    For "fade" this is a fresh ``FadeAdvantage(**params)``; keep one per training run.
    """
    try:
        entry = ESTIMATORS[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown advantage estimator {name!r}; choose one of {', '.join(sorted(ESTIMATORS))}"
        ) from None
    if isinstance(entry, type):
        return entry(**params)
    return functools.partial(entry, **params) if params else entry
