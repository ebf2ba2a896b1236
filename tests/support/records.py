"""Step records as a client would send them."""

from __future__ import annotations

import math


def histogram(bins: int = 8, lo: float = -4.0, hi: float = 4.0, seed: int = 0) -> dict:
    counts = [float((i * 7 + seed) % 5) for i in range(bins)]
    return {
        "lo": lo, "hi": hi, "bins": bins, "counts": counts, "underflow": 1.0, "overflow": 0.0,
        "count": sum(counts) + 1.0, "sum": 0.5, "sum_sq": 10.0, "min": -4.5, "max": 3.9,
        "quantiles": {"0.05": -3.0, "0.5": 0.1, "0.95": 3.0},
    }


def record(step: int, n_scalars: int = 3, histograms: int = 1, bins: int = 8) -> dict:
    scalars = {"loss": 1.0 / (step + 1), "entropy/mean": math.cos(step / 10.0)}
    scalars.update({f"extra/s{i}": float(step * i) for i in range(max(0, n_scalars - 2))})
    return {
        "step": step,
        "time": 1_700_000_000.0 + step,
        "scalars": scalars,
        "histograms": {f"h{j}": histogram(bins, seed=step + j) for j in range(histograms)},
    }


def batch(steps, **kwargs) -> dict:
    return {"records": [record(s, **kwargs) for s in steps]}
