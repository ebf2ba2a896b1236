"""Entropy detectors: collapse against an early baseline, and the early warning (the entropy
forecast of trend.py meeting the collapse level within a horizon; optionally a persistently
positive Cov(log pi, A) near the level)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import Params, Verdict, baseline, fmt, push
from fadewatch.server.alerts.evaluation.trend import Projection, trend_fit, trend_push
from fadewatch.server.schemas import MetricName

__all__ = ["EntropyCollapseParams", "EarlyWarningParams", "entropy_collapse", "entropy_early_warning",
           "describe_collapse", "describe_early", "collapse_level", "early_warning_forecast"]

Edge = Literal["early", "central", "late"]


class EntropyCollapseParams(Params):
    metric: MetricName = metrics.ENTROPY_MEAN
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    floor: float | None = Field(None, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)
    # The entropy compared is the mean of the last `smooth_steps` values: one noisy step neither
    # trips nor clears. It clears above clear_fraction x baseline (hysteresis).
    smooth_steps: int = Field(10, ge=1, le=1000)
    clear_fraction: float = Field(0.4, gt=0, lt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _clear_above(self) -> EntropyCollapseParams:
        if self.clear_fraction < self.fraction:
            raise ValueError("clear_fraction must be at least fraction (the alert clears above where it trips)")
        return self


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
    recent = mem.setdefault("m", [])
    recent.append(v)
    total = mem.get("ms", 0.0) + v  # the window's running sum
    if len(recent) > p.smooth_steps:
        total -= recent.pop(0)
    mem["ms"] = total
    level = collapse_level(base, p.fraction, p.floor)
    if level is None or len(recent) < p.smooth_steps:
        return None
    smooth = total / len(recent)
    clear_level = collapse_level(base, p.clear_fraction, p.floor and p.floor * p.clear_fraction / p.fraction)
    ratio = smooth / base if base else None
    return Verdict(smooth < level, {"entropy": smooth, "baseline": base, "collapse_level": level, "ratio": ratio,
                                    "clear_level": clear_level}, smooth >= clear_level)


def describe_collapse(v: dict, p) -> str:
    if v["entropy"] >= v.get("clear_level", v["collapse_level"]):
        return f"entropy {fmt(v['entropy'])} is back above {fmt(v.get('clear_level', v['collapse_level']))}"
    if v["entropy"] >= v["collapse_level"]:
        return (f"entropy {fmt(v['entropy'])} is above the collapse level {fmt(v['collapse_level'])}, not yet "
                f"back above {fmt(v['clear_level'])}")
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
    trend_window: int = Field(50, ge=3, le=500)
    trend_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    min_drop: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    # How far ahead the forecast may warn; None: as far as the window it was fitted on. Much
    # further, a run that sheds entropy early and then levels off (as FADE does toward its
    # target) reads as heading for collapse.
    horizon: int | None = Field(65, ge=1, le=10_000_000)
    # The interval: slope x (1 +- interval_z / |t|). Which of its steps must fall within the horizon
    # to warn: the earliest, the central projection or the latest.
    interval_z: float = Field(1.0, ge=0, allow_inf_nan=False)
    warn_edge: Edge = "early"
    # Clears (hysteresis) once entropy is above the collapse level and either no longer falling (the
    # line's slope above -clear_z standard errors) or projected to meet the level only beyond
    # clear_factor x horizon steps.
    clear_z: float = Field(1.0, ge=0, allow_inf_nan=False)
    clear_factor: float = Field(3.0, ge=1, allow_inf_nan=False)
    # The episode's hysteresis: once the forecast has tripped, the warning clears only when entropy
    # is also back above clear_fraction x baseline (None: the forecast alone decides). The default
    # mirrors min_drop: the warning ends only where it could not have begun. A fall that stops, or
    # wins back part of its way, is not a recovery: on the detection corpus FADE at learning rate 4
    # warned as its entropy fell, then held still for over 100 steps, or climbed back to where the
    # warning began, before collapsing.
    clear_fraction: float | None = Field(0.9, gt=0, le=1, allow_inf_nan=False)
    # The sign mechanism: failure-heavy mass props entropy up (the FADE paper), so a fall under it
    # (smoothed sign balance below -failure_heavy) is followed this much less far ahead.
    balance_metric: MetricName = metrics.SIGN_BALANCE
    failure_heavy: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    failure_heavy_horizon: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    # The covariance signal: Cov(log pi, A) persistently positive while entropy nears the level.
    # Off by default: on the detection corpus it added no lead over the forecast and fired on
    # healthy runs whose entropy levels off with a positive covariance.
    covariance: bool = False
    cov_window: int = Field(20, ge=3, le=500)
    cov_min_positive: float = Field(0.8, ge=0, le=1, allow_inf_nan=False)
    cov_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    # Where the covariance signal counts, as a share of the way from the collapse level (0) up to
    # the baseline (1).
    cov_zone: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    min_cov: float = Field(0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _clear_above_the_level(self) -> EarlyWarningParams:
        if self.clear_fraction is not None and self.clear_fraction <= self.fraction:
            raise ValueError("clear_fraction must be above fraction (the warning clears above the collapse level)")
        return self


def _covariance_signal(p: EarlyWarningParams, window: list[float]) -> dict | None:
    """Mean, share positive and z of the window; the z uses the window's effective size under its
    lag-1 autocorrelation, so a slowly wandering covariance is not read as n independent draws."""
    n = len(window)
    if n < p.cov_window:
        return None
    mean = sum(window) / n
    dev = [x - mean for x in window]
    var = sum(d * d for d in dev) / (n - 1)
    rho = (sum(a * b for a, b in zip(dev, dev[1:])) / (var * (n - 1))) if var > 0 else 0.0
    rho = min(max(rho, 0.0), 0.95)
    se = math.sqrt(var / n * (1 + rho) / (1 - rho))
    z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
    positive = sum(x > 0 for x in window) / n
    hit = mean > p.min_cov and positive >= p.cov_min_positive and z >= p.cov_min_z
    return {"hit": hit, "cov_mean": mean, "cov_positive_frac": positive, "cov_z": min(z, 1e9)}


def _memory_baseline(p: EarlyWarningParams, mem: dict) -> float | None:
    return mem["bs"] / mem["bn"] if mem.get("bn", 0) >= p.baseline_steps else None


def _projection(p: EarlyWarningParams, mem: dict, base: float | None, quiet: bool = False) -> Projection | None:
    """The forecast, once a whole window after the baseline steps has been seen: the fall that
    sets in while the baseline is still being measured is read from its aftermath, not its start."""
    level = collapse_level(base, p.fraction, p.floor)
    if base is None or level is None or mem.get("k", 0) < p.baseline_steps + p.trend_window:
        return None
    return trend_fit(mem, p.trend_window, level, p.interval_z, -p.clear_z if quiet else None)


def _edge_step(p: EarlyWarningParams, f: Projection) -> int | None:
    return f[{"early": "early_step", "central": "projected_step", "late": "late_step"}[p.warn_edge]]


def _horizon(p: EarlyWarningParams, mem: dict) -> int:
    horizon = p.horizon or p.trend_window
    if mem.get("sb", 0.0) < -p.failure_heavy:
        return max(1, round(horizon * p.failure_heavy_horizon))
    return horizon


def _trend_verdict(p: EarlyWarningParams, f: Projection, base: float, horizon: int) -> tuple[bool, bool]:
    """(trips, clears) of the forecast alone."""
    if f["fit"] <= f["level"]:
        return True, False  # at the level already: the warning holds until entropy recovers
    falling = f["t"] <= -p.trend_min_z and f["slope"] < 0 and f["fit"] <= (1 - p.min_drop) * base
    edge = _edge_step(p, f)
    hit = falling and edge is not None and edge - f["step"] <= horizon
    central = f["projected_step"]
    far = central is None or central - f["step"] > p.clear_factor * horizon
    return hit, f["t"] > -p.clear_z or far


def _recovered(p: EarlyWarningParams, f: Projection, base: float) -> bool:
    """The episode's hysteresis: entropy back above clear_fraction x baseline."""
    return p.clear_fraction is None or f["fit"] >= p.clear_fraction * base


def early_warning_forecast(p: EarlyWarningParams, mem: dict) -> dict | None:
    """What the early warning reads from its memory, for the dashboard's forecast line and band: the
    baseline, the collapse level, the forecast entropy and slope at the newest step, where it meets
    the level (central, earliest and latest), and the signals that trip now.

    The same function the detector runs, on the same memory: the line and the alert agree."""
    window = mem.get("t") or []
    if not window:
        return None
    base = _memory_baseline(p, mem)
    level = collapse_level(base, p.fraction, p.floor)
    out = {"step": window[-1][0], "entropy": window[-1][1], "baseline": base, "collapse_level": level,
           "entropy_fit": None, "slope": None, "t": None, "projected_step": None, "early_step": None,
           "late_step": None, "horizon": _horizon(p, mem), "signals": []}
    f = _projection(p, mem, base)
    if f is not None:
        out.update(entropy_fit=f["fit"], slope=f["slope"], t=f["t"], projected_step=f["projected_step"],
                   early_step=f["early_step"], late_step=f["late_step"])
        if _trend_verdict(p, f, base, _horizon(p, mem))[0]:
            out["signals"].append("trend")
    if p.covariance:
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
    ent = scalars.get(p.entropy_metric)
    cov = scalars.get(p.cov_metric) if p.covariance else None
    if cov is None and ent is None:
        return None
    if cov is not None:
        push(mem.setdefault("c", []), cov, p.cov_window)
    b = scalars.get(p.balance_metric)
    if b is not None:  # smoothed over about ten steps
        mem["sb"] = mem.get("sb", b) + 0.2 * (b - mem.get("sb", b))
    if ent is not None:
        base = baseline(mem, "b", ent, p.baseline_steps)
        trend_push(mem, step, ent, p.trend_window)
        mem["k"] = mem.get("k", 0) + 1
    else:
        base = _memory_baseline(p, mem)
    c = _covariance_signal(p, mem.get("c", [])) if p.covariance else None
    f = _projection(p, mem, base, quiet=True)
    if c is None and f is None:
        return None
    level = collapse_level(base, p.fraction, p.floor)
    if c is not None and not _in_cov_zone(p, mem, base, level, c):
        c["hit"] = False
    values: dict[str, Any] = {"signals": []}
    clear = True
    if c is not None:
        values.update({k: v for k, v in c.items() if k != "hit"})
        if c["hit"]:
            values["signals"].append("covariance")
            clear = False
    if f is not None:
        hit, cleared = _trend_verdict(p, f, base, _horizon(p, mem))
        cleared = cleared and _recovered(p, f, base)
        values.update(entropy_fit=f["fit"], slope=f["slope"], slope_now=f["slope"], trend_z=f["t"],
                      projected_step=f["projected_step"], early_step=f["early_step"], late_step=f["late_step"],
                      steps_to_level=f["steps_to_level"], collapse_level=f["level"], baseline=base,
                      horizon=_horizon(p, mem))
        if p.clear_fraction is not None:
            values["clear_level"] = p.clear_fraction * base
        if hit:
            values["signals"].append("trend")
        clear = clear and cleared
    if ent is not None:
        values["entropy"] = ent
    return Verdict(bool(values["signals"]), values, clear and not values["signals"])


def describe_early(v: dict, p) -> str:
    parts = []
    if "covariance" in v.get("signals", ()):
        near = f" with entropy already below {fmt(v['cov_zone_below'])}" if "cov_zone_below" in v else ""
        parts.append(f"Cov(log pi, A) has stayed positive (mean {fmt(v['cov_mean'])}, "
                     f"{v['cov_positive_frac']:.0%} of the last {p.cov_window} steps){near}, "
                     "so entropy keeps being pushed down")
    if "trend" in v.get("signals", ()):
        if v.get("steps_to_level") == 0:
            parts.append(f"entropy {fmt(v['entropy_fit'])} has reached the collapse level {fmt(v['collapse_level'])}")
        else:
            late = f"{v['late_step']}" if v.get("late_step") is not None else "later"
            parts.append(f"entropy reaches the collapse level {fmt(v['collapse_level'])} in about "
                         f"{v['steps_to_level']} steps, at step {v['projected_step']} (between {v['early_step']} "
                         f"and {late}), falling {fmt(-v['slope'])} a step")
    if not parts and v.get("entropy_fit") is not None and v["entropy_fit"] < v.get("clear_level", -math.inf):
        return (f"entropy is no longer heading for the collapse level within the horizon, but {fmt(v['entropy_fit'])} "
                f"is still under {fmt(v['clear_level'])} ({p.clear_fraction:g} x its baseline), where the warning ends")
    return "; ".join(parts) or "entropy is no longer heading for the collapse level"
