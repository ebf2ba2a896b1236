"""The FADE advantage (reconstructed from the FADE paper) and its α and δ schedules."""

from __future__ import annotations

import math
import numbers
from typing import Any

from fadewatch.advantages.groups import GroupBatch
from fadewatch.errors import UsageError

__all__ = ["FadeAdvantage", "fade", "fade_alpha", "fade_delta"]


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
    [0, 1]; 1 − r̄_g is floored at 0, and a group whose mean reaches 1 gets weight 0 (1 for
    α = 1), so α < 1 stays finite. ``FadeAdvantage`` schedules α and δ during training.
    """
    if not (isinstance(alpha, numbers.Real) and math.isfinite(alpha)):
        raise UsageError(f"FADE needs a finite alpha, got {alpha!r}")
    if not (isinstance(delta, numbers.Real) and math.isfinite(delta) and delta > 0):
        raise UsageError(f"FADE needs a finite delta > 0, got {delta!r}")
    b = GroupBatch(rewards, group_ids, need_groups=True)
    centred, mean = b.centred()
    base = 1.0 - mean
    ok = base > 0
    # (1 - r̄)^(α-1) only where 1 - r̄ > 0; elsewhere its limit for α > 1 (0), chosen 0 for α < 1.
    weight = b.where(ok, b.where(ok, base, base * 0 + 1) ** (alpha - 1.0), base * 0 + float(alpha == 1.0))
    return b.finish(weight * b.where(centred >= 0, centred, centred / delta))


class FadeAdvantage:
    """The FADE advantage with its α and δ schedules (reconstructed from the FADE paper).

    α = clip(3(1 − p̂)/(2p̂), 1, α_max) from an EMA p̂ of the batch's mean reward (cut to
    [0, 1]; the solve rate for {0, 1} rewards), as in the paper; with ``success_threshold``
    set, p̂ follows the share of rewards at or above it instead. δ = clip(1 + Ĥ − H*, δ_min, 1)
    from an EMA Ĥ of the mean token entropy. Each call first folds the batch into both EMAs,
    then computes advantages with the new α and δ. The current ``alpha``, ``delta``,
    ``solve_rate_ema`` and ``entropy_ema`` are attributes a trainer can log. Without any
    entropy given, δ stays 1. Non-finite rewards are left out of p̂.
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
        success_threshold: float | None = None,
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
        self.success_threshold = None if success_threshold is None else float(success_threshold)
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
        b = GroupBatch(rewards, group_ids, need_groups=False)
        fin = b.isfinite()
        x = b.r if self.success_threshold is None else b.success(self.success_threshold)
        # One host read per step: the schedule needs p̂ as a float.
        total, n = b.host_floats(b.where(fin, x, 0.0).sum(), (fin * 1.0).sum())
        if n:
            self.update(min(max(total / n, 0.0), 1.0), None if entropy is None else float(entropy))
        elif entropy is not None:
            self.update(self.solve_rate_ema, float(entropy))
        return fade(rewards, group_ids, alpha=self.alpha, delta=self.delta)

    def state(self) -> dict[str, float]:
        """The scalars worth logging each step."""
        return {
            "alpha": self.alpha,
            "delta": self.delta,
            "solve_rate_ema": self.solve_rate_ema,
            "entropy_ema": float("nan") if self.entropy_ema is None else self.entropy_ema,
        }
