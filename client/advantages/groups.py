"""Rewards and their groups for one backend (numpy or torch): segment sums over group codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from fadewatch.errors import UsageError

__all__ = ["GroupBatch", "group_std", "scale_by_std"]


def _is_torch(x: Any) -> bool:
    # Checked by type name so that numpy/list callers never import torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


class GroupBatch:
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


def group_std(b: GroupBatch, centred: Any, unbiased: bool) -> Any:
    ss = b.segment_sum(centred * centred)
    size = b.group_size()
    denom = size - 1 if unbiased else size
    denom = b.where(denom > 0, denom, denom * 0 + 1)
    return ((ss / denom) ** 0.5)[b.codes]


def scale_by_std(b: GroupBatch, centred: Any, eps: float, unbiased: bool) -> Any:
    # Groups with zero spread have centred == 0; keep them at 0 even when eps is 0.
    denom = group_std(b, centred, unbiased) + eps
    ok = denom > 0
    return b.where(ok, centred / b.where(ok, denom, denom * 0 + 1), centred * 0)
