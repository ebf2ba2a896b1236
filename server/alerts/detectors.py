"""Built-in detectors: pure, incremental functions of one step record and a small memory.

A detector sees each new step of a run once, in step order. Whatever it must remember
(an early baseline, a short window for a trend fit) lives in `mem`, a JSON-able dict the
engine persists with the alert's state, so nothing ever rescans stored steps. It returns a
Verdict (is the condition met, and the values that say why), or None when the step tells
it nothing (its input is missing, or its baseline is still being learned).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from fadewatch.server.schemas import MetricName

__all__ = ["Verdict", "DetectorDef", "DETECTORS", "BUILTIN", "ThresholdParams", "OPS"]

Finite = Field(allow_inf_nan=False)


class Verdict(NamedTuple):
    hit: bool
    values: dict[str, Any]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _baseline(mem: dict, key: str, value: float, needed: int) -> float | None:
    """Mean of the first `needed` values seen; None until there are that many."""
    n, total = mem.get(key + "n", 0), mem.get(key + "s", 0.0)
    if n < needed:
        n, total = n + 1, total + value
        mem[key + "n"], mem[key + "s"] = n, total
        if n < needed:
            return None
    return total / n


def _push(window: list, item, size: int) -> None:
    window.append(item)
    if len(window) > size:
        del window[: len(window) - size]


# --- user threshold -------------------------------------------------------------------

class ThresholdParams(_Params):
    metric: MetricName
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float = Finite


def threshold(p: ThresholdParams, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    return Verdict(OPS[p.op](v, p.value), {p.metric: v, "threshold": p.value})


def _describe_threshold(v: dict, p: ThresholdParams) -> str:
    value = v.get(p.metric)
    if value is not None and OPS[p.op](value, p.value):
        return f"{p.metric} = {_fmt(value)} {p.op} {_fmt(p.value)}"
    return f"{p.metric} = {_fmt(value)}, no longer {p.op} {_fmt(p.value)}"


# --- entropy collapse -----------------------------------------------------------------

class EntropyCollapseParams(_Params):
    metric: MetricName = "entropy/mean"
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    floor: float | None = Field(None, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)


def _collapse_level(base: float | None, fraction: float, floor: float | None) -> float | None:
    level = None if base is None else fraction * base
    if floor is not None:
        level = floor if level is None else max(level, floor)
    return level


def entropy_collapse(p: EntropyCollapseParams, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    base = _baseline(mem, "b", v, p.baseline_steps)
    level = _collapse_level(base, p.fraction, p.floor)
    if level is None:
        return None
    ratio = v / base if base else None
    return Verdict(v < level, {"entropy": v, "baseline": base, "collapse_level": level, "ratio": ratio})


def _describe_collapse(v: dict, p) -> str:
    if v["entropy"] >= v["collapse_level"]:
        return f"entropy {_fmt(v['entropy'])} is back above the collapse level {_fmt(v['collapse_level'])}"
    if v.get("ratio") is not None:
        return (f"entropy {_fmt(v['entropy'])} is {v['ratio']:.0%} of its early baseline "
                f"{_fmt(v['baseline'])} (collapse level {_fmt(v['collapse_level'])})")
    return f"entropy {_fmt(v['entropy'])} is below the floor {_fmt(v['collapse_level'])}"


# --- entropy early warning ------------------------------------------------------------

class EarlyWarningParams(_Params):
    entropy_metric: MetricName = "entropy/mean"
    cov_metric: MetricName = "entropy/cov_logp_adv"
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    floor: float | None = Field(None, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)
    cov_window: int = Field(20, ge=3, le=500)
    cov_min_positive: float = Field(0.8, ge=0, le=1, allow_inf_nan=False)
    cov_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    min_cov: float = Field(0.0, allow_inf_nan=False)
    trend_window: int = Field(30, ge=3, le=500)
    trend_min_z: float = Field(4.0, ge=0, allow_inf_nan=False)
    min_drop: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    horizon: int = Field(200, ge=1, le=10_000_000)


def _covariance_signal(p: EarlyWarningParams, window: list[float]) -> dict | None:
    n = len(window)
    if n < p.cov_window:
        return None
    mean = math.fsum(window) / n
    var = math.fsum((x - mean) ** 2 for x in window) / (n - 1)
    se = math.sqrt(var / n)
    z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
    positive = sum(1 for x in window if x > 0) / n
    hit = mean > p.min_cov and positive >= p.cov_min_positive and z >= p.cov_min_z
    return {"hit": hit, "cov_mean": mean, "cov_positive_frac": positive, "cov_z": min(z, 1e9)}


def _trend_signal(p: EarlyWarningParams, window: list, base: float | None) -> dict | None:
    """Least-squares line through the last trend_window entropies, and where it meets the level."""
    n = len(window)
    level = _collapse_level(base, p.fraction, p.floor)
    if n < p.trend_window or base is None or level is None:
        return None
    last = window[-1][0]
    xs = [s - last for s, _ in window]
    ys = [y for _, y in window]
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    fit_now = my - slope * mx
    resid = math.fsum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys)) / max(n - 2, 1)
    se = math.sqrt(resid / sxx)
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
        _push(mem.setdefault("c", []), cov, p.cov_window)
    base = None
    if ent is not None:
        base = _baseline(mem, "b", ent, p.baseline_steps)
        _push(mem.setdefault("t", []), [step, ent], p.trend_window)
    elif mem.get("bn", 0) >= p.baseline_steps:
        base = mem["bs"] / mem["bn"]
    c = _covariance_signal(p, mem.get("c", []))
    t = _trend_signal(p, mem.get("t", []), base)
    if c is None and t is None:
        return None
    values: dict[str, Any] = {}
    for part in (c, t):
        if part:
            values.update({k: v for k, v in part.items() if k != "hit"})
    signals = [name for name, part in (("covariance", c), ("trend", t)) if part and part["hit"]]
    values["signals"] = signals
    if ent is not None:
        values["entropy"] = ent
    return Verdict(bool(signals), values)


def _describe_early(v: dict, p) -> str:
    parts = []
    if "covariance" in v.get("signals", ()):
        parts.append(f"Cov(log pi, A) has stayed positive (mean {_fmt(v['cov_mean'])}, "
                     f"{v['cov_positive_frac']:.0%} of the last {p.cov_window} steps)")
    if "trend" in v.get("signals", ()):
        parts.append(f"the entropy trend reaches the collapse level {_fmt(v['collapse_level'])} "
                     f"at step {v['projected_step']}")
    return "; ".join(parts) or "entropy is no longer drifting toward collapse"


# --- sign imbalance -------------------------------------------------------------------

class SignImbalanceParams(_Params):
    metric: MetricName = "sign/balance"
    bound: float = Field(0.5, gt=0, lt=1, allow_inf_nan=False)


def sign_imbalance(p: SignImbalanceParams, mem, step, scalars, nonfinite) -> Verdict | None:
    b = scalars.get(p.metric)
    if b is None:
        return None
    if b > 0:
        direction, points_to = "success-heavy", "entropy collapse"
    else:
        direction, points_to = "failure-heavy", "weight-geometry collapse"
    return Verdict(abs(b) > p.bound, {"balance": b, "bound": p.bound, "direction": direction,
                                      "points_to": points_to})


def _describe_sign(v: dict, p) -> str:
    if abs(v["balance"]) <= v["bound"]:
        return f"sign balance b = {v['balance']:+.2f} is back within ±{_fmt(v['bound'])}"
    return (f"sign balance b = {v['balance']:+.2f} is {v['direction']} (|b| > {_fmt(v['bound'])}), "
            f"which points to {v['points_to']}")


# --- heavy tails ----------------------------------------------------------------------

class HeavyTailsParams(_Params):
    max_abs_over_std: float | None = Field(10.0, gt=0, allow_inf_nan=False)
    kurtosis: float | None = Field(20.0, allow_inf_nan=False)
    min_ess_frac: float | None = Field(0.1, gt=0, lt=1, allow_inf_nan=False)


_TAILS = (("adv/max_abs_over_std", "max_abs_over_std", 1), ("adv/kurtosis", "kurtosis", 1),
          ("difficulty/ess_frac", "min_ess_frac", -1))


def heavy_tails(p: HeavyTailsParams, mem, step, scalars, nonfinite) -> Verdict | None:
    values: dict[str, Any] = {}
    tripped = []
    for metric, field, sign in _TAILS:
        bound, v = getattr(p, field), scalars.get(metric)
        if bound is None or v is None:
            continue
        values[metric] = v
        if (v > bound) if sign > 0 else (v < bound):
            tripped.append(metric)
    if not values:
        return None
    values["tripped"] = tripped
    return Verdict(bool(tripped), values)


def _describe_tails(v: dict, p) -> str:
    names = {"adv/max_abs_over_std": ("max|A|/std", ">", p.max_abs_over_std),
             "adv/kurtosis": ("kurtosis", ">", p.kurtosis),
             "difficulty/ess_frac": ("ESS/N", "<", p.min_ess_frac)}
    parts = [f"{names[m][0]} {_fmt(v[m])} {names[m][1]} {_fmt(names[m][2])}" for m in v.get("tripped", ())]
    return "heavy-tailed advantages: " + ", ".join(parts) if parts else "advantage tails are back in bounds"


# --- bounds on one scalar: no signal, geometry -----------------------------------------

class NoSignalParams(_Params):
    metric: MetricName = "difficulty/no_signal_frac"
    bound: float = Field(0.8, ge=0, lt=1, allow_inf_nan=False)


class GeometryParams(_Params):
    metric: MetricName = "geometry/rank1_frac"
    bound: float = Field(0.95, gt=0, lt=1, allow_inf_nan=False)


def _above(p, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    return Verdict(v > p.bound, {p.metric: v, "bound": p.bound})


def _describe_no_signal(v: dict, p) -> str:
    if v[p.metric] <= p.bound:
        return f"{v[p.metric]:.0%} of the groups are all solved or all failed, back under {p.bound:.0%}"
    return (f"{v[p.metric]:.0%} of the groups are all solved or all failed, so they teach nothing "
            f"(bound {p.bound:.0%})")


def _describe_geometry(v: dict, p) -> str:
    if v[p.metric] <= p.bound:
        return f"rank-1 fraction of the head update {_fmt(v[p.metric])} is back under {_fmt(p.bound)}"
    return (f"rank-1 fraction of the head update {_fmt(v[p.metric])} > {_fmt(p.bound)}: the update "
            "is concentrating into one direction")


# --- diversity collapse ---------------------------------------------------------------

class DiversityParams(_Params):
    distinct_metric: MetricName = "diversity/distinct_frac"
    distinct_fraction: float | None = Field(0.5, gt=0, lt=1, allow_inf_nan=False)
    gap_metric: MetricName = "diversity/pass_gap"
    gap_fraction: float | None = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    min_gap_baseline: float = Field(0.05, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)


def diversity_collapse(p: DiversityParams, mem, step, scalars, nonfinite) -> Verdict | None:
    values: dict[str, Any] = {}
    tripped = []
    for metric, fraction, key, minimum in ((p.distinct_metric, p.distinct_fraction, "d", 0.0),
                                           (p.gap_metric, p.gap_fraction, "g", p.min_gap_baseline)):
        v = scalars.get(metric)
        if fraction is None or v is None:
            continue
        base = _baseline(mem, key, v, p.baseline_steps)
        if base is None or base <= minimum:
            continue
        values[metric] = v
        values[metric + ":baseline"] = base
        if v < fraction * base:
            tripped.append(metric)
    if not values:
        return None
    values["tripped"] = tripped
    return Verdict(bool(tripped), values)


def _describe_diversity(v: dict, p) -> str:
    parts = [f"{m} {_fmt(v[m])} is {v[m] / v[m + ':baseline']:.0%} of its baseline {_fmt(v[m + ':baseline'])}"
             for m in v.get("tripped", ())]
    return "diversity collapse: " + "; ".join(parts) if parts else "diversity is back above its bounds"


# --- non-finite values ----------------------------------------------------------------

class NonfiniteParams(_Params):
    metrics: list[MetricName] | None = Field(None, max_length=200)


def nonfinite_values(p: NonfiniteParams, mem, step, scalars, nonfinite) -> Verdict:
    names = list(nonfinite or ())
    if p.metrics is not None:
        wanted = set(p.metrics)
        names = [n for n in names if n in wanted]
    return Verdict(bool(names), {"nonfinite": names})


def _describe_nonfinite(v: dict, p) -> str:
    names = v.get("nonfinite") or []
    return "non-finite values (NaN or Inf) in " + ", ".join(names[:10]) if names else "values are finite again"


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


class DetectorDef(NamedTuple):
    title: str
    params: type[_Params]
    step: Callable[..., Verdict | None]
    describe: Callable[[dict, Any], str]


DETECTORS: dict[str, DetectorDef] = {
    "threshold": DetectorDef("Threshold", ThresholdParams, threshold, _describe_threshold),
    "entropy_collapse": DetectorDef("Entropy collapse", EntropyCollapseParams, entropy_collapse, _describe_collapse),
    "entropy_early_warning": DetectorDef("Entropy early warning", EarlyWarningParams, entropy_early_warning, _describe_early),
    "sign_imbalance": DetectorDef("Sign imbalance", SignImbalanceParams, sign_imbalance, _describe_sign),
    "heavy_tails": DetectorDef("Heavy-tailed advantages", HeavyTailsParams, heavy_tails, _describe_tails),
    "no_signal": DetectorDef("No learning signal", NoSignalParams, _above, _describe_no_signal),
    "diversity_collapse": DetectorDef("Diversity collapse", DiversityParams, diversity_collapse, _describe_diversity),
    "geometry_collapse": DetectorDef("Weight-geometry collapse", GeometryParams, _above, _describe_geometry),
    "nonfinite": DetectorDef("Non-finite values", NonfiniteParams, nonfinite_values, _describe_nonfinite),
}
BUILTIN = tuple(name for name in DETECTORS if name != "threshold")
