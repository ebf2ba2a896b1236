"""One small set of array operations over numpy or torch, so each statistic is written once.

torch is imported lazily, only when the caller hands over torch tensors. On a CUDA device
every operation here is sync-free: no data-dependent shapes (no boolean indexing, no
``unique``, no ``bincount``) and no host reads.
"""

from __future__ import annotations

import sys
from operator import itemgetter
from typing import Any

import numpy as np

__all__ = ["is_torch", "NumpyOps", "TorchOps", "ops_for", "pick", "take_rows", "pow2_scale",
           "finite_part"]

SENTINEL = np.iinfo(np.int64).max
_NO_NUMPY_DTYPE = ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2")


def is_torch(x: Any) -> bool:
    """True for torch tensors (and Parameters); a tensor exists only if torch is imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class NumpyOps:
    """Host arrays."""

    torch = False
    sync_free = False  # host code may use data-dependent shapes freely

    def __init__(self) -> None:
        self.xp = np
        self.f32, self.f64, self.i64, self.bool = np.float32, np.float64, np.int64, np.bool_

    def asarray(self, x: Any, dtype: Any = None) -> np.ndarray:
        if is_torch(x):
            x = x.detach().cpu()
            if str(x.dtype) in _NO_NUMPY_DTYPE:
                x = x.float()
            x = x.numpy()  # a CPU tensor is viewed, not copied
        return np.asarray(x, dtype=dtype)

    def floating(self, x: Any) -> np.ndarray:
        """float32/float64 as given; anything else (half, ints, bools) as float32."""
        x = self.asarray(x)
        return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)

    def const(self, values: Any, dtype: Any) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    def zeros(self, n: int, dtype: Any) -> np.ndarray:
        return np.zeros(n, dtype=dtype)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def cast(self, x: np.ndarray, dtype: Any) -> np.ndarray:
        return x.astype(dtype, copy=False)

    def sum(self, x: np.ndarray, axis: int | None = None, dtype: Any = None) -> np.ndarray:
        return x.sum(axis=axis, dtype=dtype)

    def amin(self, x: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.amin(x, axis=axis) if x.size else np.asarray(np.inf)

    def amax(self, x: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.amax(x, axis=axis) if x.size else np.asarray(-np.inf)

    def count(self, m: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.asarray(np.count_nonzero(m, axis=axis), dtype=np.int64)

    def clip(self, x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
        return np.clip(x, lo, hi)

    def where(self, c: np.ndarray, a: Any, b: Any) -> np.ndarray:
        return np.where(c, a, b)

    def bincount(self, idx: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
        out = np.bincount(idx.ravel(), None if weights is None else weights.ravel(), minlength=n)
        return out[:n]

    def sort(self, x: np.ndarray) -> np.ndarray:
        return np.sort(x, axis=-1)

    def argsort(self, x: np.ndarray) -> np.ndarray:
        return np.argsort(x, kind="stable")

    def cumsum(self, x: np.ndarray) -> np.ndarray:
        return np.cumsum(x)

    def concat(self, xs: list, axis: int = 0) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    def full(self, shape: tuple, value: Any, dtype: Any) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def searchsorted(self, a: np.ndarray, v: np.ndarray, right: bool = False) -> np.ndarray:
        return np.searchsorted(a, v, side="right" if right else "left")

    def select(self, x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, None]:
        """The kept entries of x (flattened); the second value marks real entries (None: all)."""
        return x[keep], None

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)


class TorchOps:
    """torch tensors on one device; on CUDA every call only launches kernels."""

    torch = True

    def __init__(self, device: Any) -> None:
        import torch

        self.xp = torch
        self.device = torch.device(device)
        self.sync_free = self.device.type != "cpu"
        self.pin = self.device.type == "cuda"
        self.f32, self.f64, self.i64, self.bool = torch.float32, torch.float64, torch.int64, torch.bool

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        t = self.xp
        if is_torch(x):
            x = x.detach()
            if x.device != self.device:
                x = x.to(self.device, non_blocking=True)
            return x if dtype is None else x.to(dtype)
        x = np.asarray(x)
        if x.dtype == object or x.dtype.kind in "US":
            raise TypeError("not numeric")
        h = t.from_numpy(np.ascontiguousarray(x))
        if self.pin:
            h = h.pin_memory()
        h = h.to(self.device, non_blocking=True)
        return h if dtype is None else h.to(dtype)

    def floating(self, x: Any) -> Any:
        x = self.asarray(x)
        return x if x.dtype in (self.f32, self.f64) else x.to(self.f32)

    def const(self, values: Any, dtype: Any) -> Any:
        to_numpy = {self.f32: np.float32, self.f64: np.float64, self.i64: np.int64, self.bool: np.bool_}
        return self.asarray(np.asarray(values, dtype=to_numpy[dtype]))

    def zeros(self, n: int, dtype: Any) -> Any:
        return self.xp.zeros(n, dtype=dtype, device=self.device)

    def arange(self, n: int) -> Any:
        return self.xp.arange(n, dtype=self.i64, device=self.device)

    def cast(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def sum(self, x: Any, axis: int | None = None, dtype: Any = None) -> Any:
        return x.sum(dtype=dtype) if axis is None else x.sum(dim=axis, dtype=dtype)

    def amin(self, x: Any, axis: int | None = None) -> Any:
        if x.numel() == 0:
            return self.xp.tensor(float("inf"), device=self.device)
        return self.xp.amin(x) if axis is None else self.xp.amin(x, dim=axis)

    def amax(self, x: Any, axis: int | None = None) -> Any:
        if x.numel() == 0:
            return self.xp.tensor(float("-inf"), device=self.device)
        return self.xp.amax(x) if axis is None else self.xp.amax(x, dim=axis)

    def count(self, m: Any, axis: int | None = None) -> Any:
        return self.xp.count_nonzero(m) if axis is None else self.xp.count_nonzero(m, dim=axis)

    def clip(self, x: Any, lo: float | None, hi: float | None) -> Any:
        return self.xp.clamp(x, lo, hi)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        return self.xp.where(c, a, b)

    def bincount(self, idx: Any, n: int, weights: Any = None) -> Any:
        idx = idx.reshape(-1)
        if not self.sync_free:
            w = None if weights is None else weights.reshape(-1)
            return self.xp.bincount(idx, w, minlength=n)[:n]
        # torch.bincount reads the largest index back to the host; index_add_ does not.
        if weights is None:
            return self.zeros(n, self.i64).index_add_(0, idx, self.xp.ones_like(idx))
        w = weights.reshape(-1)
        if w.dtype == self.bool:
            w = w.to(self.i64)
        return self.zeros(n, w.dtype).index_add_(0, idx, w)

    def sort(self, x: Any) -> Any:
        return self.xp.sort(x, dim=-1).values

    def argsort(self, x: Any) -> Any:
        return self.xp.sort(x, stable=True).indices

    def cumsum(self, x: Any) -> Any:
        return self.xp.cumsum(x, 0)

    def concat(self, xs: list, axis: int = 0) -> Any:
        return self.xp.cat(xs, dim=axis)

    def full(self, shape: tuple, value: Any, dtype: Any) -> Any:
        return self.xp.full(shape, value, dtype=dtype, device=self.device)

    def searchsorted(self, a: Any, v: Any, right: bool = False) -> Any:
        return self.xp.searchsorted(a, v, right=right)

    def select(self, x: Any, keep: Any) -> tuple[Any, Any]:
        if not self.sync_free:
            return x[keep], None
        # Same length out (a shape that does not depend on the data): dropped entries become
        # the largest int64, so they sort last and the mask tells them apart.
        x = self.xp.where(keep, x, SENTINEL).reshape(-1)
        return x, keep.reshape(-1)

    def to_host(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()


def pow2_scale(B: Any, amax: Any) -> Any:
    """A power of two s with s * amax in [0.5, 1) (1 for 0), as a float64 0-d array or tensor.

    Multiplying by s is exact, so values scaled by it keep every bit while their squares and
    sums can neither overflow (|x| up to the largest float) nor underflow (down to 1e-300).
    Built from the exponent bits: no data-dependent control flow, no host read.
    """
    if B.torch:
        e = B.xp.frexp(B.cast(amax, B.f64)).exponent.to(B.i64)
        e = B.xp.where(amax > 0, e, B.xp.zeros_like(e)).clamp(-1000, 1000)
        return ((1023 - e) << 52).view(B.f64)
    _, e = np.frexp(np.asarray(amax, dtype=np.float64))
    e = np.clip(np.where(amax > 0, e, 0).astype(np.int64), -1000, 1000)
    return np.asarray((1023 - e) << 52).view(np.float64)


def finite_part(B: Any, x: Any) -> tuple[Any, Any]:
    """x with its NaN and Inf entries set to 0, and where x is finite."""
    fin = B.xp.isfinite(x)
    return B.where(fin, x, 0.0), fin


def pick(x: Any, rows: np.ndarray) -> list:
    """The items `rows` of a list (C-level, no Python loop) or of an array, as a list."""
    if isinstance(x, np.ndarray):
        return list(x[rows])
    if len(rows) == 0:
        return []
    got = itemgetter(*rows.tolist())(x)
    return list(got) if len(rows) > 1 else [got]


def take_rows(B: Any, x: Any, rows: np.ndarray) -> Any:
    """x[rows] computed where x lives (rows: host int64 indices)."""
    if not is_torch(x) or not B.torch and x.device.type == "cpu":
        return B.asarray(x)[rows]
    if B.torch and x.device == B.device:
        return x[B.const(rows, B.i64)]
    import torch

    return x[torch.from_numpy(rows).to(x.device)]


def ops_for(*arrays: Any) -> NumpyOps | TorchOps:
    """torch on the device of the first accelerator tensor; numpy when all data is on the host.

    CPU tensors are viewed as numpy arrays (no copy): single-threaded numpy does not compete
    with the trainer for torch's CPU thread pool, and is as fast here.
    """
    for a in arrays:
        if a is not None and is_torch(a) and a.device.type != "cpu":
            return TorchOps(a.device)
    return NumpyOps()
