"""Entropy detectors: collapse against an early baseline, and the early warning (a persistently
positive Cov(log pi, A), or an entropy trend that meets the collapse level within a horizon)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from fadewatch.server.alerts.detector_base import Params, Verdict, baseline, fmt, push
from fadewatch.server.schemas import MetricName

__all__ = ["EntropyCollapseParams", "EarlyWarningParams", "entropy_collapse", "entropy_early_warning",
           "describe_collapse", "describe_early", "collapse_level"]


class EntropyCollapseParams(Params):
    metric: MetricName = "entropy/mean"
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    floor: float | None = Field(None, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)


def collapse_level(base: float | None, fraction: float, floor: float | None) -> float | None:
    level = None if base is None else fraction * base
    if floor is not None:
        level = floor if level is None else max(level, floor)
    return level


def entropy_collapse(p: EntropyCollapseParams, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    base = baseline(mem, "b", v, p.baseline_steps)
    level = collapse_level(base, p.fraction, p.floor)
    if level is None:
        return None
    ratio = v / base if base else None
    return Verdict(v < level, {"entropy": v, "baseline": base, "collapse_level": level, "ratio": ratio})


def describe_collapse(v: dict, p) -> str:
    if v["entropy"] >= v["collapse_level"]:
        return f"entropy {fmt(v['entropy'])} is back above the collapse level {fmt(v['collapse_level'])}"
    if v.get("ratio") is not None:
        return (f"entropy {fmt(v['entropy'])} is {v['ratio']:.0%} of its early baseline "
                f"{fmt(v['baseline'])} (collapse level {fmt(v['collapse_level'])})")
    return f"entropy {fmt(v['entropy'])} is below the floor {fmt(v['collapse_level'])}"


class EarlyWarningParams(Params):
    entropy_metric: MetricName = "entropy/mean"
    cov_metric: MetricName = "entropy/cov_logp_adv"
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    floor: float | None = Field(None, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)
    cov_window: int = Field(20, ge=3, le=500)
    cov_min_positive: float = Field(0.8, ge=0, le=1, allow_inf_nan=False)
    cov_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    # Where the covariance signal counts, as a share of the way from the collapse level (0) up to
    # the baseline (1): early in training every run's entropy falls (that is how a policy sharpens)
    # with a positive covariance, which warns of nothing until the entropy nears the level.
    cov_zone: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    min_cov: float = Field(0.0, allow_inf_nan=False)
    trend_window: int = Field(30, ge=3, le=500)
    trend_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    min_drop: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    horizon: int = Field(200, ge=1, le=10_000_000)


# Both signals run on every ingested step, so they are single passes of plain arithmetic over
# windows of a few dozen values (exact enough: entropies and covariances are O(1) numbers).

def _covariance_signal(p: EarlyWarningParams, window: list[float]) -> dict | None:
    n = len(window)
    if n < p.cov_window:
        return None
    mean = sum(window) / n
    var = sum([(x - mean) * (x - mean) for x in window]) / (n - 1)
    se = math.sqrt(var / n)
    z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
    positive = sum([x > 0 for x in window]) / n
    hit = mean > p.min_cov and positive >= p.cov_min_positive and z >= p.cov_min_z
    return {"hit": hit, "cov_mean": mean, "cov_positive_frac": positive, "cov_z": min(z, 1e9)}


def _trend_push(mem: dict, step: int, entropy: float, size: int) -> None:
    """Add a point to the trend window and keep its regression sums up to date in O(1).

    The sums are over x = step - ref; every `size` pushes they are recomputed from the window
    with a new ref (its oldest step), which keeps x small and rounding from accumulating.
    """
    window = mem.setdefault("t", [])
    window.append([step, entropy])
    sums = mem.get("ts")
    if sums is None or sums[6] >= size:
        del window[: max(0, len(window) - size)]
        ref = window[0][0]
        sums = [ref, 0.0, 0.0, 0.0, 0.0, 0.0, 0]
        for s, y in window:
            x = s - ref
            sums[1:6] = [sums[1] + x, sums[2] + y, sums[3] + x * x, sums[4] + x * y, sums[5] + y * y]
        mem["ts"] = sums
        return
    ref = sums[0]
    x = step - ref
    sums[1:7] = [sums[1] + x, sums[2] + entropy, sums[3] + x * x, sums[4] + x * entropy,
                 sums[5] + entropy * entropy, sums[6] + 1]
    if len(window) > size:
        s0, y0 = window.pop(0)
        x0 = s0 - ref
        sums[1:6] = [sums[1] - x0, sums[2] - y0, sums[3] - x0 * x0, sums[4] - x0 * y0, sums[5] - y0 * y0]


def _trend_signal(p: EarlyWarningParams, mem: dict, base: float | None) -> dict | None:
    """Least-squares line through the last trend_window entropies, and where it meets the level."""
    window, sums = mem.get("t", []), mem.get("ts")
    n = len(window)
    level = collapse_level(base, p.fraction, p.floor)
    if n < p.trend_window or sums is None or base is None or level is None:
        return None
    ref, sx, sy, sxx, sxy, syy, _ = sums
    cxx = sxx - sx * sx / n
    if cxx <= 1e-12:
        return None
    cxy, cyy = sxy - sx * sy / n, syy - sy * sy / n
    slope = cxy / cxx
    last = window[-1][0]
    fit_now = sy / n + slope * (last - ref - sx / n)
    resid = max(cyy - slope * cxy, 0.0) / max(n - 2, 1)
    se = math.sqrt(resid / cxx)
    t = slope / se if se > 0 else (-math.inf if slope < 0 else 0.0)
    projected = None
    hit = False
    if slope < 0 and t <= -p.trend_min_z and fit_now <= (1 - p.min_drop) * base:
        projected = last if fit_now <= level else last + math.ceil((level - fit_now) / slope)
        hit = projected - last <= p.horizon
    return {"hit": hit, "slope": slope, "trend_z": max(t, -1e9), "entropy_fit": fit_now,
            "projected_step": projected, "collapse_level": level, "baseline": base}


def entropy_early_warning(p: EarlyWarningParams, mem, step, scalars, nonfinite) -> Verdict | None:
    cov = scalars.get(p.cov_metric)
    ent = scalars.get(p.entropy_metric)
    if cov is None and ent is None:
        return None
    if cov is not None:
        push(mem.setdefault("c", []), cov, p.cov_window)
    base = None
    if ent is not None:
        base = baseline(mem, "b", ent, p.baseline_steps)
        _trend_push(mem, step, ent, p.trend_window)
    elif mem.get("bn", 0) >= p.baseline_steps:
        base = mem["bs"] / mem["bn"]
    c = _covariance_signal(p, mem.get("c", []))
    t = _trend_signal(p, mem, base)
    if c is None and t is None:
        return None
    level = collapse_level(base, p.fraction, p.floor)
    if c is not None and base is not None and level is not None:
        c["cov_zone_below"] = zone = level + p.cov_zone * (max(base, level) - level)
        current = t["entropy_fit"] if t is not None else ent
        if current is not None and current > zone:
            c["hit"] = False
    values: dict[str, Any] = {}
    for part in (c, t):
        if part:
            values.update({k: v for k, v in part.items() if k != "hit"})
    signals = [name for name, part in (("covariance", c), ("trend", t)) if part and part["hit"]]
    values["signals"] = signals
    if ent is not None:
        values["entropy"] = ent
    return Verdict(bool(signals), values)


def describe_early(v: dict, p) -> str:
    parts = []
    if "covariance" in v.get("signals", ()):
        near = f" with entropy already below {fmt(v['cov_zone_below'])}" if "cov_zone_below" in v else ""
        parts.append(f"Cov(log pi, A) has stayed positive (mean {fmt(v['cov_mean'])}, "
                     f"{v['cov_positive_frac']:.0%} of the last {p.cov_window} steps){near}, "
                     "so entropy keeps being pushed down")
    if "trend" in v.get("signals", ()):
        parts.append(f"the entropy trend reaches the collapse level {fmt(v['collapse_level'])} "
                     f"at step {v['projected_step']}")
    return "; ".join(parts) or "entropy is no longer drifting toward collapse"
