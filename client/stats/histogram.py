"""Histograms and quantiles: bin counts reduced on the data's device, wire dicts built on the host.

Uniform bins are half-open, [lo + i*w, lo + (i+1)*w); values below lo are underflow, values
at or above hi overflow, and NaN is left out of every bin and of ``count``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fadewatch.protocol.histograms import bin_quantiles, uniform_edges
from fadewatch.stats.config import HistogramSpec

__all__ = ["reduce_uniform", "reduce_weighted", "masked_quantiles", "uniform_dict",
           "weighted_dict", "qkey", "tail_values"]


def qkey(q: float) -> str:
    return f"{q:g}"


def _slots(B: Any, x: Any, spec: HistogramSpec, valid: Any, mf: Any, finite: bool) -> Any:
    """Counts per slot: 0 underflow, 1..bins the bins, bins+1 overflow (NaN and padding left out)."""
    bins, lo = spec.bins, spec.lo
    scale = bins / (spec.hi - spec.lo)
    if not B.torch:
        # floor((x - lo) * scale) + 1 clipped to [0, bins + 1]; x - lo has the sign of x < lo.
        t = x.dtype.type
        s = x - t(lo)
        s *= t(scale)
        np.floor(s, out=s)
        np.clip(s, -1, bins, out=s)
        s += 1
        if finite:
            if mf is None:
                return np.bincount(s.astype(np.intp).ravel(), minlength=bins + 2)
            # Padding is multiplied into slot 0 and taken back out of it afterwards.
            s *= mf if mf.dtype == s.dtype else mf.astype(s.dtype)
            counts = np.bincount(s.astype(np.intp).ravel(), minlength=bins + 2)
            counts[0] -= s.size - np.count_nonzero(valid)
            return counts
        s[np.isnan(s)] = bins + 2
        if valid is not None:
            np.copyto(s, bins + 2, where=~valid)
        return np.bincount(s.astype(np.intp).ravel(), minlength=bins + 3)[:bins + 2]
    s = ((x - lo) * scale).floor_().clamp_(-1, bins).add_(1)
    s = B.xp.nan_to_num(s, nan=float(bins + 2))
    if valid is not None:
        s = B.xp.where(valid, s, float(bins + 2))
    return B.bincount(s.to(B.i64), bins + 3)[:bins + 2]


def reduce_uniform(B: Any, raw: dict, key: str, x: Any, spec: HistogramSpec, valid: Any = None,
                   mf: Any = None, xv: Any = None, total: Any = None,
                   finite: bool | None = None, tails: int = 0) -> None:
    """Bin counts and moments of x where valid. When the caller has them already: mf, valid
    as 0/1 floats; xv, x with padding 0; total, the sum of xv; finite, whether all of x is.
    tails > 0 also keeps the exact values at both ends (see ``_tails``)."""
    if xv is None:
        xv = x if valid is None else B.where(valid, x, 0)
    # The record's sum and sum_sq are float64 and null when they pass the largest float.
    with np.errstate(over="ignore", invalid="ignore"):
        if total is None:
            total = B.sum(xv, dtype=B.f64)
        raw[key + ".sum"] = total
        if B.torch:
            raw[key + ".sum_sq"] = B.sum(xv * xv, dtype=B.f64)
        elif xv.ndim == 2:
            raw[key + ".sum_sq"] = np.einsum("ij,ij->i", xv, xv).sum(dtype=np.float64)
        else:
            raw[key + ".sum_sq"] = np.dot(xv.astype(np.float64), xv.astype(np.float64))
    if valid is None:
        raw[key + ".min"], raw[key + ".max"] = B.amin(x), B.amax(x)
    elif B.torch:
        raw[key + ".min"] = B.amin(B.where(valid, x, float("inf")))
        raw[key + ".max"] = B.amax(B.where(valid, x, float("-inf")))
    else:
        raw[key + ".min"] = np.amin(x, where=valid, initial=np.inf)
        raw[key + ".max"] = np.amax(x, where=valid, initial=-np.inf)
    if mf is None and valid is not None and not B.torch:
        mf = valid.astype(x.dtype)
    if finite is None:
        finite = B.torch or (valid is None and bool(np.isfinite(total)))
    raw[key + ".slots"] = _slots(B, x, spec, valid, mf, finite)
    if tails:
        raw[key + ".low"], raw[key + ".high"] = _tails(B, x, valid, spec, raw[key + ".slots"], tails)


def _tails(B: Any, x: Any, valid: Any, spec: HistogramSpec, slots: Any, k: int) -> tuple[Any, Any]:
    """The exact values the bins cannot place: every value when there are at most k, else the
    k smallest values below lo and the k largest at or above hi (fewer when fewer are there).

    Both come back sorted ascending. The device takes the k smallest and largest of all
    values (a fixed shape); ``tail_values`` cuts them to the same rule on the host.
    """
    if B.torch:
        keep = ~B.xp.isnan(x) if valid is None else valid & ~B.xp.isnan(x)
        flat, on = x.reshape(-1), keep.reshape(-1)
        k = min(k, flat.shape[0])
        inf = float("inf")
        low = B.xp.topk(B.where(on, flat, inf), k, largest=False, sorted=True).values
        high = B.xp.topk(B.where(on, flat, -inf), k, largest=True, sorted=True).values.flip(0)
        return low, high
    # The host knows the counts already: most steps have nothing in the tails and cost nothing.
    def real(m: np.ndarray) -> np.ndarray:
        return m if valid is None else m & valid

    low = high = np.empty(0, dtype=np.float64)
    if slots.sum() <= k:
        values = np.sort(x[real(~np.isnan(x))], axis=None).astype(np.float64)
        return values, values
    if slots[0] > 0:
        under = x[real(x < spec.lo)]  # NaN compares false: never in a tail
        low = np.sort(np.partition(under, k - 1)[:k] if under.size > k else under).astype(np.float64)
    if slots[-1] > 0:
        over = x[real(x >= spec.hi)]
        high = np.sort(np.partition(over, over.size - k)[-k:] if over.size > k else over).astype(np.float64)
    return low, high


def tail_values(h: dict, key: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact smallest and largest values of a histogram reduced with tails=k, cut to the rule
    of ``_tails``: all values when there are at most k, else only those outside [lo, hi)."""
    slots = np.asarray(h[key + ".slots"], dtype=np.float64)
    n = int(slots.sum())
    low = np.asarray(h[key + ".low"], dtype=np.float64).reshape(-1)
    high = np.asarray(h[key + ".high"], dtype=np.float64).reshape(-1)
    if n <= k:
        n_low = n_high = n
    else:
        n_low, n_high = min(k, int(slots[0])), min(k, int(slots[-1]))
    return low[:min(n_low, len(low))], high[len(high) - min(n_high, len(high)):]


def masked_quantiles(B: Any, x: Any, valid: Any, qs: tuple[float, ...]) -> tuple[Any, Any]:
    """Linear-interpolation quantiles of x over valid entries (1-D); also the number of them."""
    inf = float("inf")
    xs = B.sort(x if valid is None else B.where(valid, x, inf))
    nv = B.cast(B.count(valid) if valid is not None else B.const(x.shape[0], B.i64), B.f64)
    pos = B.clip(B.const(qs, B.f64) * (nv - 1), 0.0, None)
    lo = B.cast(B.xp.floor(pos), B.i64)
    hi = B.xp.minimum(lo + 1, B.cast(B.clip(nv - 1, 0.0, None), B.i64))
    frac = pos - B.cast(lo, B.f64)
    a, b = B.cast(xs[lo], B.f64), B.cast(xs[hi], B.f64)
    with np.errstate(invalid="ignore"):  # inf - inf when nothing is valid; read as None later
        return B.where(frac > 0, a + (b - a) * frac, a), nv


def reduce_weighted(B: Any, raw: dict, key: str, bins: Any, nb: int, v: Any, w: Any,
                    qs: tuple[float, ...]) -> None:
    """Histogram over explicit bins of items with value v and weight w (float64, 1-D).

    Quantiles are weighted and of the inverted-CDF kind: the smallest v whose cumulative
    weight reaches q times the total.
    """
    raw[key + ".counts"] = B.bincount(bins, nb, w)
    total = B.sum(w)
    raw[key + ".count"] = total
    raw[key + ".sum"] = B.sum(w * v)
    raw[key + ".sum_sq"] = B.sum(w * v * v)
    on = w > 0
    raw[key + ".min"] = B.amin(B.where(on, v, float("inf")))
    raw[key + ".max"] = B.amax(B.where(on, v, float("-inf")))
    order = B.argsort(B.where(on, v, float("inf")))
    vs, cum = v[order], B.cumsum(w[order])
    idx = B.searchsorted(cum, B.const(qs, B.f64) * total)
    last = B.clip(B.count(on) - 1, 0, None)  # rounding must not reach the weightless items
    raw[key + ".q"] = vs[B.clip(B.xp.minimum(idx, last), 0, None)]


# ---------------------------------------------------------------- host side (finalize)

def _num(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


def uniform_dict(h: dict, key: str, spec: HistogramSpec, qs: tuple[float, ...],
                 exact_q: Any = None, tails: int = 0) -> dict:
    """The wire-format HISTOGRAM of a uniform histogram; exact_q: host quantile values or None,
    else they are read off the bins (and the exact tails, when reduced with tails=k)."""
    slots = np.asarray(h[key + ".slots"], dtype=np.float64)
    counts, under, over = slots[1:spec.bins + 1], slots[0], slots[spec.bins + 1]
    vmin, vmax = float(h[key + ".min"]), float(h[key + ".max"])
    count = float(under + counts.sum() + over)
    if count == 0:
        vmin = vmax = float("nan")
    if exact_q is not None:
        quant = {qkey(q): (_num(v) if count else None) for q, v in zip(qs, exact_q)}
    else:
        low, high = tail_values(h, key, tails) if tails else (None, None)
        est = bin_quantiles(counts, uniform_edges(spec.lo, spec.hi, spec.bins), qs, underflow=under,
                            overflow=over, vmin=vmin, vmax=vmax, low=low, high=high)
        quant = {qkey(q): _num(v) for q, v in zip(qs, est)}
    return {"lo": spec.lo, "hi": spec.hi, "bins": spec.bins,
            "counts": [float(c) for c in counts], "underflow": float(under),
            "overflow": float(over), "count": count,
            "sum": _num(h[key + ".sum"]), "sum_sq": _num(h[key + ".sum_sq"]),
            "min": _num(vmin), "max": _num(vmax), "quantiles": quant, "labels": None}


def weighted_dict(h: dict, key: str, edges: list[float], labels: list[str],
                  qs: tuple[float, ...]) -> dict:
    counts = np.asarray(h[key + ".counts"], dtype=np.float64)
    count = float(h[key + ".count"])
    has = count > 0 and np.isfinite(count)
    qv = np.asarray(h[key + ".q"], dtype=np.float64).reshape(-1)
    return {"edges": list(edges), "counts": [float(c) for c in counts],
            "underflow": 0.0, "overflow": 0.0, "count": count if np.isfinite(count) else 0.0,
            "sum": _num(h[key + ".sum"]) if has else 0.0,
            "sum_sq": _num(h[key + ".sum_sq"]) if has else 0.0,
            "min": _num(h[key + ".min"]) if has else None,
            "max": _num(h[key + ".max"]) if has else None,
            "quantiles": {qkey(q): (_num(v) if has else None) for q, v in zip(qs, qv)},
            "labels": list(labels)}
