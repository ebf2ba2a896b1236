"""Entropy detectors: collapse against an early baseline, and the early warning (a persistently
positive Cov(log pi, A), or an entropy trend that meets the collapse level within a horizon)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import Params, Verdict, baseline, fmt, push
from fadewatch.server.schemas import MetricName

__all__ = ["EntropyCollapseParams", "EarlyWarningParams", "entropy_collapse", "entropy_early_warning",
           "describe_collapse", "describe_early", "collapse_level", "early_warning_forecast"]


class EntropyCollapseParams(Params):
    metric: MetricName = metrics.ENTROPY_MEAN
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
    entropy_metric: MetricName = metrics.ENTROPY_MEAN
    cov_metric: MetricName = metrics.ENTROPY_COV_LOGP_ADV
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
    trend_window: int = Field(50, ge=3, le=500)
    trend_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    min_drop: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    # How far ahead the fitted line may be followed; None: as far as the window it was fitted on.
    # Much further, a run that sheds entropy early and then levels off (as FADE does toward its
    # target) reads as heading for collapse.
    horizon: int | None = Field(None, ge=1, le=10_000_000)



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


def _add(sums: list[float], x: float, y: float, sign: float) -> None:
    """Add (sign 1) or remove (sign -1) a point's share of the sums x, x^2, x^3, x^4, y, xy, x^2 y, y^2."""
    x2 = x * x
    sums[0] += sign * x
    sums[1] += sign * x2
    sums[2] += sign * x2 * x
    sums[3] += sign * x2 * x2
    sums[4] += sign * y
    sums[5] += sign * x * y
    sums[6] += sign * x2 * y
    sums[7] += sign * y * y


def _trend_push(mem: dict, step: int, entropy: float, size: int) -> None:
    """Add a point to the trend window and keep its regression sums up to date in O(1).

    The sums are over x = step - ref; every `size` pushes they are recomputed from the window
    with a new ref (its oldest step), which keeps x small and rounding from accumulating.
    mem["ts"] = [ref, pushes since recomputed, *sums].
    """
    window = mem.setdefault("t", [])
    window.append([step, entropy])
    state = mem.get("ts")
    if state is None or len(state) != 10 or state[1] >= size:
        del window[: max(0, len(window) - size)]
        ref = window[0][0]
        sums = [0.0] * 8
        for s, y in window:
            _add(sums, s - ref, y, 1.0)
        mem["ts"] = [ref, 0, *sums]
        return
    ref = state[0]
    sums = state[2:]
    _add(sums, step - ref, entropy, 1.0)
    if len(window) > size:
        s0, y0 = window.pop(0)
        _add(sums, s0 - ref, y0, -1.0)
    mem["ts"] = [ref, state[1] + 1, *sums]


def _det3(a, b, c, d, e, f, g, h, i) -> float:
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _quadratic_now(n: int, u1: float, u2: float, u3: float, u4: float, y0: float, y1: float,
                   y2: float) -> tuple[float, float] | None:
    """Value and slope at u = 0 of the least-squares y = a + b u + c u^2 (Cramer's rule)."""
    det = _det3(n, u1, u2, u1, u2, u3, u2, u3, u4)
    if abs(det) < 1e-9 * max(1.0, abs(n * u2 * u4)):
        return None
    a = _det3(y0, u1, u2, y1, u2, u3, y2, u3, u4) / det
    b = _det3(n, y0, u2, u1, y1, u3, u2, y2, u4) / det
    return a, b


def _trend_signal(p: EarlyWarningParams, mem: dict, base: float | None) -> dict | None:
    """Where the entropy is heading: a line through the window says whether it is falling at all
    (its slope's t statistic); a quadratic through the same points gives the entropy now and its
    slope now, which are followed to the collapse level. A decline that is levelling off is so
    not extrapolated as if it went on at its average pace."""
    window, state = mem.get("t", []), mem.get("ts")
    n = len(window)
    level = collapse_level(base, p.fraction, p.floor)
    if n < p.trend_window or state is None or len(state) != 10 or base is None or level is None:
        return None
    ref, _, s1, s2, s3, s4, sy, sxy, sx2y, syy = state
    cxx = s2 - s1 * s1 / n
    if cxx <= 1e-12:
        return None
    cxy, cyy = sxy - s1 * sy / n, syy - sy * sy / n
    slope = cxy / cxx
    resid = max(cyy - slope * cxy, 0.0) / max(n - 2, 1)
    se = math.sqrt(resid / cxx)
    t = slope / se if se > 0 else (-math.inf if slope < 0 else 0.0)
    last = window[-1][0]
    # The same sums about the newest step (u = x - xl): the quadratic's a and b are then the
    # entropy and its slope at that step.
    xl = last - ref
    u1 = s1 - n * xl
    u2 = s2 - 2 * xl * s1 + n * xl * xl
    u3 = s3 - 3 * xl * s2 + 3 * xl * xl * s1 - n * xl ** 3
    u4 = s4 - 4 * xl * s3 + 6 * xl * xl * s2 - 4 * xl ** 3 * s1 + n * xl ** 4
    uy, u2y = sxy - xl * sy, sx2y - 2 * xl * sxy + xl * xl * sy
    quad = _quadratic_now(n, u1, u2, u3, u4, sy, uy, u2y)
    line_now = sy / n + slope * (xl - s1 / n)
    # The cautious reading of both fits: the higher entropy now and the shallower slope now, so
    # neither a levelling-off decline nor the noise of the quadratic's end makes a false alarm.
    fit_now, slope_now = (max(line_now, quad[0]), max(slope, quad[1])) if quad else (line_now, slope)
    projected = None
    hit = False
    if t <= -p.trend_min_z and slope_now < 0 and fit_now <= (1 - p.min_drop) * base:
        projected = last if fit_now <= level else last + math.ceil((level - fit_now) / slope_now)
        hit = projected - last <= (p.horizon or p.trend_window)
    return {"hit": hit, "slope": slope, "slope_now": slope_now, "trend_z": max(t, -1e9),
            "entropy_fit": fit_now, "projected_step": projected, "collapse_level": level, "baseline": base}


def _memory_baseline(p: EarlyWarningParams, mem: dict) -> float | None:
    return mem["bs"] / mem["bn"] if mem.get("bn", 0) >= p.baseline_steps else None


def early_warning_forecast(p: EarlyWarningParams, mem: dict) -> dict | None:
    """What the early warning reads from its memory, for the dashboard's forecast line: the
    baseline, the collapse level, the fitted entropy and slope at the newest step, and the step
    where the fit meets the level (None while the entropy is not falling significantly).

    The same function the detector runs, on the same memory: the line and the alert agree."""
    window = mem.get("t") or []
    base = _memory_baseline(p, mem)
    level = collapse_level(base, p.fraction, p.floor)
    if not window:
        return None
    out = {"step": window[-1][0], "entropy": window[-1][1], "baseline": base, "collapse_level": level,
           "entropy_fit": None, "slope": None, "projected_step": None,
           "horizon": p.horizon or p.trend_window, "signals": []}
    t = _trend_signal(p, mem, base)
    if t is not None:
        out.update(entropy_fit=t["entropy_fit"], slope=t["slope_now"], projected_step=t["projected_step"])
        if t["hit"]:
            out["signals"].append("trend")
    c = _covariance_signal(p, mem.get("c", []))
    if c is not None and c["hit"] and _in_cov_zone(p, mem, base, level, c):
        out["signals"].append("covariance")
    return out


def _in_cov_zone(p: EarlyWarningParams, mem: dict, base: float | None, level: float | None, c: dict) -> bool:
    """The covariance signal counts only once the smoothed entropy is in the lower zone."""
    if base is None or level is None:
        return True
    c["cov_zone_below"] = zone = level + p.cov_zone * (max(base, level) - level)
    recent = mem.get("t", [])[-10:]  # smoothed: the mean of the last 10 entropies
    current = sum(y for _, y in recent) / len(recent) if recent else None
    return current is None or current <= zone


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
    else:
        base = _memory_baseline(p, mem)
    c = _covariance_signal(p, mem.get("c", []))
    t = _trend_signal(p, mem, base)
    if c is None and t is None:
        return None
    level = collapse_level(base, p.fraction, p.floor)
    if c is not None and not _in_cov_zone(p, mem, base, level, c):
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
