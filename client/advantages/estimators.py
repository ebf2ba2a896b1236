"""The static estimators: GRPO, Dr. GRPO, RLOO, PSR, NSR, W-REINFORCE, MaxRL, F-GRPO."""

from __future__ import annotations

from typing import Any

from fadewatch.advantages.groups import GroupBatch, scale_by_std

__all__ = ["dr_grpo", "f_grpo", "grpo", "maxrl", "nsr", "psr", "rloo", "w_reinforce"]


def dr_grpo(rewards: Any, group_ids: Any) -> Any:
    """Dr. GRPO: reward minus its group mean, no scaling."""
    b = GroupBatch(rewards, group_ids, need_groups=True)
    return b.finish(b.centred()[0])


def grpo(rewards: Any, group_ids: Any, *, eps: float = 1e-6, unbiased_std: bool = False) -> Any:
    """GRPO: (r − group mean) / (group std + eps); population std unless unbiased_std."""
    b = GroupBatch(rewards, group_ids, need_groups=True)
    return b.finish(scale_by_std(b, b.centred()[0], eps, unbiased_std))


def rloo(rewards: Any, group_ids: Any) -> Any:
    """RLOO: reward minus the mean of the other G−1 rollouts; zero for singleton groups."""
    b = GroupBatch(rewards, group_ids, need_groups=True)
    size = b.group_size()[b.codes]
    scale = b.where(size > 1, size / b.where(size > 1, size - 1, size), size * 0)
    return b.finish(scale * b.centred()[0])


def psr(rewards: Any, group_ids: Any = None, *, success_threshold: float = 0.5) -> Any:
    """Positive-only REINFORCE on success: 1 for success, 0 otherwise."""
    b = GroupBatch(rewards, group_ids, need_groups=False)
    return b.finish(b.success(success_threshold))


def nsr(rewards: Any, group_ids: Any = None, *, success_threshold: float = 0.5) -> Any:
    """Negative-only: 0 for success, −1 for failure."""
    b = GroupBatch(rewards, group_ids, need_groups=False)
    return b.finish(b.success(success_threshold) - 1.0)


def w_reinforce(
    rewards: Any, group_ids: Any = None, *, lam: float = 0.1, success_threshold: float = 0.5
) -> Any:
    """W-REINFORCE: λ for success, −1 for failure."""
    b = GroupBatch(rewards, group_ids, need_groups=False)
    s = b.success(success_threshold)
    return b.finish(lam * s - (1.0 - s))


def maxrl(rewards: Any, group_ids: Any, *, eps: float = 1e-8) -> Any:
    """MaxRL: (r − r̄_g) / r̄_g; groups whose mean is at most eps (all failed) get zeros."""
    b = GroupBatch(rewards, group_ids, need_groups=True)
    centred, mean = b.centred()
    ok = mean > eps
    safe = b.where(ok, mean, mean * 0 + 1)
    return b.finish(b.where(ok, centred / safe, mean * 0))


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
    b = GroupBatch(rewards, group_ids, need_groups=True)
    adv = scale_by_std(b, b.centred()[0], eps, unbiased_std)
    p_hat = b.group_mean(b.success(success_threshold))
    return b.finish((1.0 - p_hat) ** gamma * adv)
