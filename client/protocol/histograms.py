"""Histogram records and the one routine that reads quantiles off binned counts.

A histogram record has either uniform bins (``lo``, ``hi``, ``bins``) or explicit ``edges``,
plus ``underflow`` (values below the first edge), ``overflow`` (values at or above the last)
and the observed ``min`` and ``max``. The hook (per step) and the server (for columns that
merge steps) read quantiles with :func:`bin_quantiles`, so both give the same numbers.

Two kinds of quantile, matching what the hook computes exactly per step:

- ``"linear"`` (value histograms: advantages, entropy, ...): the linear interpolation
  between order statistics (numpy's default method), q at rank q * (n - 1);
- ``"inverted_cdf"`` (mass histograms, labelled bins such as the difficulty axis): the
  smallest value whose cumulative weight reaches q times the total.

Bound: the slot (bin, or the underflow span [min, lo), or the overflow span [hi, max]) that
holds the rank also holds the exact value, and the estimate never leaves it, so the error is
at most the width of that slot; the result always lies in [min, max]. Where the exact values
at the ends are known (``low``/``high``), those ranks are exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["uniform_edges", "record_edges", "quantile_method", "bin_quantiles", "slot_bounds"]


def uniform_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """The bins + 1 edges of uniform bins on [lo, hi)."""
    return np.linspace(float(lo), float(hi), int(bins) + 1)


def record_edges(record: dict, bins: int | None = None) -> list[float]:
    """The edges of a histogram record, explicit or uniform; ``bins``: how many, where the record
    holds no counts (a stored layout's bins)."""
    if record.get("edges") is not None:
        return [float(e) for e in record["edges"]]
    return uniform_edges(record["lo"], record["hi"], len(record["counts"]) if bins is None else bins).tolist()


def quantile_method(labels: Any) -> str:
    """Labelled bins hold mass (the difficulty axis): inverted CDF; value histograms: linear."""
    return "inverted_cdf" if labels else "linear"


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def slot_bounds(edges: np.ndarray, vmin: float, vmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right ends of [underflow, bins..., overflow], each cut to [vmin, vmax]."""
    e = np.asarray(edges, dtype=np.float64)
    left = np.concatenate([[min(vmin, e[0])], e])
    right = np.concatenate([e, [max(vmax, e[-1])]])
    return np.clip(left, vmin, vmax), np.clip(right, vmin, vmax)


def bin_quantiles(counts: Any, edges: Any, qs: Any, *, underflow: float = 0.0, overflow: float = 0.0,
                  vmin: Any = None, vmax: Any = None, method: str = "linear",
                  low: Any = None, high: Any = None) -> np.ndarray:
    """Quantiles qs of binned values (NaN where undefined: no values).

    counts: per bin (may be fractional); edges: len(counts) + 1, non-decreasing. Without
    vmin / vmax the outer edges of the non-empty slots stand in (lo and hi for the tails).
    low / high (linear only): the smallest / largest values, sorted ascending, known exactly
    (low[j] is the j-th smallest value, high[-1 - j] the j-th largest); may be empty.
    """
    qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    c = np.concatenate([[underflow], np.asarray(counts, dtype=np.float64), [overflow]])
    c = np.where(np.isfinite(c) & (c > 0), c, 0.0)
    n = float(c.sum())
    lo_v, hi_v = _finite(vmin), _finite(vmax)
    e = np.asarray(edges, dtype=np.float64)
    nz = np.flatnonzero(c)
    if len(nz) and lo_v is None:
        # No observed minimum: the outer edge of the lowest non-empty bin (lo for underflow,
        # whose values then all read as lo: an underflow rank is at most lo).
        lo_v = float(e[max(nz[0] - 1, 0)])
    if len(nz) and hi_v is None:
        hi_v = float(e[min(nz[-1], len(e) - 1)])
    if n <= 0 or not math.isfinite(n) or lo_v is None or hi_v is None or hi_v < lo_v:
        return np.full(len(qs), np.nan)
    left, right = slot_bounds(e, lo_v, hi_v)
    cum = np.cumsum(c)
    if method == "inverted_cdf":
        out = _inverted_cdf(c, cum, left, right, qs * n)
    elif method == "linear":
        out = _linear(c, cum, left, right, qs, n, lo_v, hi_v, low, high)
    else:
        raise ValueError(f"method must be 'linear' or 'inverted_cdf', got {method!r}")
    return np.clip(out, lo_v, hi_v)


def _inverted_cdf(c, cum, left, right, target) -> np.ndarray:
    nz = np.flatnonzero(c)
    # First non-empty slot whose cumulative weight reaches the target.
    j = np.minimum(np.searchsorted(cum[nz], target, side="left"), len(nz) - 1)
    i = nz[j]
    frac = np.clip((target - (cum[i] - c[i])) / c[i], 0.0, 1.0)
    return left[i] + (right[i] - left[i]) * frac


def _exact(values: Any) -> np.ndarray:
    if values is None:
        return np.empty(0)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return v[~np.isnan(v)]


def _linear(c, cum, left, right, qs, n, vmin, vmax, low, high) -> np.ndarray:
    low, high = _exact(low), _exact(high)
    last = max(n - 1.0, 0.0)
    rank = qs * last
    k0 = np.floor(rank)
    k1 = np.minimum(k0 + 1.0, last)
    frac = rank - k0
    # Ranks past the known ends lie between the last known value and the next edge.
    floor_v = low[-1] if len(low) else vmin
    ceil_v = high[0] if len(high) else vmax
    lft, rgt = np.clip(left, floor_v, ceil_v), np.clip(right, floor_v, ceil_v)

    def item(k: np.ndarray) -> np.ndarray:
        # The k-th smallest value: in the slot whose cumulative count passes k, spread evenly
        # over that slot (each of its c values at the middle of its share).
        i = np.minimum(np.searchsorted(cum, k, side="right"), len(c) - 1)
        start = cum[i] - c[i]
        f = np.clip((k - start + 0.5) / np.where(c[i] > 0, c[i], 1.0), 0.0, 1.0)
        v = lft[i] + (rgt[i] - lft[i]) * f
        v = np.where(k <= 0, vmin, v)
        v = np.where(k >= last, vmax, v)
        if len(low):
            v = np.where(k < len(low), low[np.minimum(k, len(low) - 1).astype(np.int64)], v)
        if len(high):
            back = last - k  # 0 for the largest value
            v = np.where(back < len(high), high[len(high) - 1 - np.clip(back, 0, len(high) - 1).astype(np.int64)], v)
        return v

    a, b = item(k0), item(k1)
    return np.where(frac > 0, a + (b - a) * frac, a)
