"""Built-in detectors: pure, incremental functions of one step record and a small memory.

A detector sees each new step of a run once, in step order. Whatever it must remember
(an early baseline, a short window for a trend fit) lives in `mem`, a JSON-able dict the
engine persists with the alert's state, so nothing ever rescans stored steps. It returns a
Verdict (is the condition met, and the values that say why), or None when the step tells
it nothing (its input is missing, or its baseline is still being learned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from pydantic import Field

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import OPS, Finite, Params, Verdict, baseline, fmt
from fadewatch.server.alerts.evaluation.entropy import (EarlyWarningParams, EntropyCollapseParams, describe_collapse,
                                                       describe_early, early_warning_forecast, entropy_collapse,
                                                       entropy_early_warning)
from fadewatch.server.schemas import MetricName

__all__ = ["Verdict", "DetectorDef", "DETECTORS", "BUILTIN", "ThresholdParams", "OPS"]


# --- user threshold -------------------------------------------------------------------

class ThresholdParams(Params):
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
        return f"{p.metric} = {fmt(value)} {p.op} {fmt(p.value)}"
    return f"{p.metric} = {fmt(value)}, no longer {p.op} {fmt(p.value)}"


# --- sign imbalance -------------------------------------------------------------------

class SignImbalanceParams(Params):
    metric: MetricName = metrics.SIGN_BALANCE
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
        return f"sign balance b = {v['balance']:+.2f} is back within ±{fmt(v['bound'])}"
    return (f"sign balance b = {v['balance']:+.2f} is {v['direction']} (|b| > {fmt(v['bound'])}), "
            f"which points to {v['points_to']}")


# --- heavy tails ----------------------------------------------------------------------

class HeavyTailsParams(Params):
    max_abs_over_std: float | None = Field(10.0, gt=0, allow_inf_nan=False)
    kurtosis: float | None = Field(20.0, allow_inf_nan=False)
    min_ess_frac: float | None = Field(0.1, gt=0, lt=1, allow_inf_nan=False)


_TAILS = ((metrics.ADV_MAX_ABS_OVER_STD, "max_abs_over_std", 1), (metrics.ADV_KURTOSIS, "kurtosis", 1),
          (metrics.DIFFICULTY_ESS_FRAC, "min_ess_frac", -1))


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
    names = {metrics.ADV_MAX_ABS_OVER_STD: ("max|A|/std", ">", p.max_abs_over_std),
             metrics.ADV_KURTOSIS: ("kurtosis", ">", p.kurtosis),
             metrics.DIFFICULTY_ESS_FRAC: ("ESS/N", "<", p.min_ess_frac)}
    parts = [f"{names[m][0]} {fmt(v[m])} {names[m][1]} {fmt(names[m][2])}" for m in v.get("tripped", ())]
    return "heavy-tailed advantages: " + ", ".join(parts) if parts else "advantage tails are back in bounds"


# --- bounds on one scalar: no signal, geometry -----------------------------------------

class NoSignalParams(Params):
    metric: MetricName = metrics.DIFFICULTY_NO_SIGNAL_FRAC
    bound: float = Field(0.8, ge=0, lt=1, allow_inf_nan=False)


class GeometryParams(Params):
    metric: MetricName = metrics.GEOMETRY_RANK1_FRAC
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
        return f"rank-1 fraction of the head update {fmt(v[p.metric])} is back under {fmt(p.bound)}"
    return (f"rank-1 fraction of the head update {fmt(v[p.metric])} > {fmt(p.bound)}: the update "
            "is concentrating into one direction")


# --- diversity collapse ---------------------------------------------------------------

class DiversityParams(Params):
    distinct_metric: MetricName = metrics.DIVERSITY_DISTINCT_FRAC
    distinct_fraction: float | None = Field(0.5, gt=0, lt=1, allow_inf_nan=False)
    gap_metric: MetricName = metrics.DIVERSITY_PASS_GAP
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
        base = baseline(mem, key, v, p.baseline_steps)
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
    parts = [f"{m} {fmt(v[m])} is {v[m] / v[m + ':baseline']:.0%} of its baseline {fmt(v[m + ':baseline'])}"
             for m in v.get("tripped", ())]
    return "diversity collapse: " + "; ".join(parts) if parts else "diversity is back above its bounds"


# --- non-finite values ----------------------------------------------------------------

class NonfiniteParams(Params):
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


class DetectorDef(NamedTuple):
    title: str
    params: type[Params]
    step: Callable[..., Verdict | None]
    describe: Callable[[dict, Any], str]
    # (params, memory) -> where the watched metric is heading, for the dashboard; None: no forecast.
    forecast: Callable[[Any, dict], dict | None] | None = None


DETECTORS: dict[str, DetectorDef] = {
    "threshold": DetectorDef("Threshold", ThresholdParams, threshold, _describe_threshold),
    "entropy_collapse": DetectorDef("Entropy collapse", EntropyCollapseParams, entropy_collapse, describe_collapse),
    "entropy_early_warning": DetectorDef("Entropy early warning", EarlyWarningParams, entropy_early_warning,
                                         describe_early, early_warning_forecast),
    "sign_imbalance": DetectorDef("Sign imbalance", SignImbalanceParams, sign_imbalance, _describe_sign),
    "heavy_tails": DetectorDef("Heavy-tailed advantages", HeavyTailsParams, heavy_tails, _describe_tails),
    "no_signal": DetectorDef("No learning signal", NoSignalParams, _above, _describe_no_signal),
    "diversity_collapse": DetectorDef("Diversity collapse", DiversityParams, diversity_collapse, _describe_diversity),
    "geometry_collapse": DetectorDef("Weight-geometry collapse", GeometryParams, _above, _describe_geometry),
    "nonfinite": DetectorDef("Non-finite values", NonfiniteParams, nonfinite_values, _describe_nonfinite),
}
BUILTIN = tuple(name for name in DETECTORS if name != "threshold")
