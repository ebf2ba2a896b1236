"""Rewards and their groups for one backend (numpy or torch): segment sums over group codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from fadewatch.errors import UsageError

__all__ = ["GroupBatch", "group_std", "scale_by_std"]


def _is_torch(x: Any) -> bool:
    # Checked by type name so that numpy/list callers never import torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def _work_dtype(torch: Any, r: Any) -> Any:
    """float64 on the CPU; on an accelerator at least float32 (float64 stays float64)."""
    if r.device.type == "cpu":
        return torch.float64
    return torch.float64 if r.dtype == torch.float64 else torch.float32


class GroupBatch:
    """Rewards as float, their group codes, and segment-sum helpers for one backend.

    The arithmetic runs in at least float32 (float64 on the CPU) whatever the rewards'
    dtype, and ``finish`` returns the caller's dtype: half-precision rewards would otherwise
    round the group means and give a constant group advantages far from zero.
    """

    def __init__(self, rewards: Any, group_ids: Any, *, need_groups: bool):
        self.torch = _is_torch(rewards)
        if self.torch:
            import torch

            r = rewards.detach()
            self.out_dtype = r.dtype if torch.is_floating_point(r) else torch.get_default_dtype()
            r = r.to(_work_dtype(torch, r))
        else:
            try:
                arr = np.asarray(rewards)
                r = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"rewards must be numbers, got {rewards!r:.80}") from exc
            self.out_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
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

    def group_min(self, x: Any) -> Any:
        """Minimum of x over each rollout's group (NaN if the group has one), shape [N]."""
        if self.torch:
            import torch

            out = torch.full((self.n_groups,), float("inf"), dtype=x.dtype, device=x.device)
            return out.scatter_reduce_(0, self.codes, x, "amin")[self.codes]
        out = np.full(self.n_groups, np.inf)
        with np.errstate(invalid="ignore"):  # a NaN reward makes its group NaN, as documented
            np.minimum.at(out, self.codes, x)
        return out[self.codes]

    def centred(self) -> tuple[Any, Any]:
        """(r - group mean, group mean), both [N]; exactly 0 and r for a constant group.

        Rewards are first shifted by their group's minimum, which is exact and leaves a
        constant group all zeros, so no rounding of its mean can make its advantages non-zero.
        """
        shift = self.group_min(self.r)
        d = self.r - shift
        mean_d = self.group_mean(d)
        return d - mean_d, shift + mean_d

    def ones(self) -> Any:
        return self.r * 0 + 1

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if self.torch:
            import torch

            return torch.where(cond, a, b)
        return np.where(cond, a, b)

    def isfinite(self) -> Any:
        if self.torch:
            import torch

            return torch.isfinite(self.r)
        return np.isfinite(self.r)

    def host_floats(self, *values: Any) -> list[float]:
        """Scalars as python floats, with one device read for all of them."""
        if self.torch:
            import torch

            return torch.stack([v.reshape(()) for v in values]).tolist()
        return [float(v) for v in values]

    def success(self, threshold: float) -> Any:
        """1.0 where r >= threshold, else 0.0, in the working dtype."""
        hit = self.r >= threshold
        return hit.to(self.r.dtype) if self.torch else hit.astype(np.float64)

    def finish(self, adv: Any) -> Any:
        """Advantages in the caller's dtype (a float64 array for lists and integer arrays)."""
        if self.torch:
            return adv.to(self.out_dtype)
        return np.asarray(adv, dtype=self.out_dtype)


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
