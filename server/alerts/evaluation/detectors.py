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

from pydantic import Field

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import OPS, Finite, Params, Verdict, fmt
from fadewatch.server.alerts.evaluation.diversity import DiversityParams, describe_diversity, diversity_collapse
from fadewatch.server.alerts.evaluation.entropy import (EarlyWarningParams, EntropyCollapseParams, describe_collapse,
                                                       describe_early, early_warning_forecast, entropy_collapse,
                                                       entropy_early_warning)
from fadewatch.server.alerts.evaluation.regime import SignParams, describe_sign, regime_view, sign_regime
from fadewatch.server.schemas import MetricName

__all__ = ["Verdict", "DetectorDef", "DETECTORS", "BUILTIN", "ThresholdParams", "OPS"]


# --- user threshold -------------------------------------------------------------------

class ThresholdParams(Params):
    metric: MetricName
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float = Finite
    clear_value: float | None = Field(None, allow_inf_nan=False)


def threshold(p: ThresholdParams, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    hit = OPS[p.op](v, p.value)
    clear = not hit if p.clear_value is None else not OPS[p.op](v, p.clear_value)
    values = {p.metric: v, "threshold": p.value}
    if p.clear_value is not None:
        values["clear_threshold"] = p.clear_value
    return Verdict(hit, values, clear)


def _describe_threshold(v: dict, p: ThresholdParams) -> str:
    value = v.get(p.metric)
    if value is not None and OPS[p.op](value, p.value):
        return f"{p.metric} = {fmt(value)} {p.op} {fmt(p.value)}"
    bound = p.value if p.clear_value is None else p.clear_value
    if value is not None and OPS[p.op](value, bound):
        return f"{p.metric} = {fmt(value)} is not yet back past {fmt(bound)}"
    return f"{p.metric} = {fmt(value)}, no longer {p.op} {fmt(bound)}"


# --- heavy tails ----------------------------------------------------------------------

class HeavyTailsParams(Params):
    max_abs_over_std: float | None = Field(10.0, gt=0, allow_inf_nan=False)
    kurtosis: float | None = Field(20.0, allow_inf_nan=False)
    min_ess_frac: float | None = Field(0.1, gt=0, lt=1, allow_inf_nan=False)
    # Rewards of two values (pass/fail) alone make tails that grow with the group size and with how
    # rare successes (or failures) are: each bound gives way to `bernoulli_margin` x the most that
    # such rewards can give at the step's group size, solve rate and share of groups with signal.
    # None: the fixed bounds only.
    bernoulli_margin: float | None = Field(1.5, ge=1, allow_inf_nan=False)
    # Outliers come and go from step to step: trip when at least `min_share` of the last `window`
    # steps are past a bound, clear when at most `clear_share` are.
    window: int = Field(20, ge=1, le=1000)
    min_share: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    clear_share: float = Field(0.15, ge=0, lt=1, allow_inf_nan=False)


def _bernoulli_reference(scalars: dict) -> tuple[float, float, float] | None:
    """(max|A|/std, excess kurtosis, ESS/N) at their most extreme for pass/fail rewards at this step:
    every group with signal holding one success (or one failure) among G, or the batch one rare outcome."""
    counts = [scalars.get(k) for k in (metrics.SIGN_N_POS, metrics.SIGN_N_NEG, metrics.SIGN_N_ZERO)]
    groups, rate = scalars.get(metrics.DIFFICULTY_N_GROUPS), scalars.get(metrics.DIFFICULTY_SOLVE_RATE)
    if None in counts or not groups or rate is None:
        return None
    n = sum(counts)
    if n < 2 or groups < 1:
        return None
    size = max(n / groups, 2.0)
    signal = max(1.0 - (scalars.get(metrics.DIFFICULTY_NO_SIGNAL_FRAC) or 0.0), 1.0 / groups)
    p = min(max(rate, 1.0 / n), 1.0 - 1.0 / n)
    pq = p * (1 - p)
    rare = 1.0 / size
    return (max(math.sqrt((size - 1) / signal), 1 / math.sqrt(pq)),
            max((size - 1) ** 2 / (size * signal) - 3, (1 - 6 * pq) / pq),
            min(signal * 4 * rare * (1 - rare), min(p, 1 - p)))


_TAILS = ((metrics.ADV_MAX_ABS_OVER_STD, "max_abs_over_std", 1, 0), (metrics.ADV_KURTOSIS, "kurtosis", 1, 1),
          (metrics.DIFFICULTY_ESS_FRAC, "min_ess_frac", -1, 2))


def heavy_tails(p: HeavyTailsParams, mem, step, scalars, nonfinite) -> Verdict | None:
    values: dict[str, Any] = {}
    tripped = []
    ref: tuple | None | bool = False  # computed once, and only for a value past its fixed bound
    for metric, field, sign, k in _TAILS:
        bound, v = getattr(p, field), scalars.get(metric)
        if bound is None or v is None:
            continue
        past = v > bound if sign > 0 else v < bound
        if past and p.bernoulli_margin is not None:
            if ref is False:
                ref = _bernoulli_reference(scalars)
            if ref is not None:  # what pass/fail rewards can give here moves the bound
                m = p.bernoulli_margin
                bound = max(bound, m * ref[k]) if sign > 0 else min(bound, ref[k] / m)
                past = v > bound if sign > 0 else v < bound
        values[metric], values[metric + ":bound"] = v, bound
        if past:
            tripped.append(metric)
    if not values:
        return None
    # The window as bits (newest lowest): one small integer in the stored state.
    mem["w"] = bits = ((mem.get("w", 0) << 1) | bool(tripped)) & ((1 << p.window) - 1)
    share = bits.bit_count() / p.window
    values.update(tripped=tripped, share=share, window=p.window)
    return Verdict(share >= p.min_share, values, share <= p.clear_share)


def _describe_tails(v: dict, p) -> str:
    names = {metrics.ADV_MAX_ABS_OVER_STD: ("max|A|/std", ">"), metrics.ADV_KURTOSIS: ("kurtosis", ">"),
             metrics.DIFFICULTY_ESS_FRAC: ("ESS/N", "<")}
    parts = [f"{names[m][0]} {fmt(v[m])} {names[m][1]} {fmt(v[m + ':bound'])}" for m in v.get("tripped", ())]
    if v.get("share", 0) >= p.min_share:
        return (f"heavy-tailed advantages on {v['share']:.0%} of the last {v['window']} steps"
                + (f" (now {', '.join(parts)})" if parts else "")
                + "; bounds allow for what pass/fail rewards give at this group size and solve rate")
    return f"advantage tails are back in bounds ({v.get('share', 0):.0%} of the last {v.get('window')} steps past them)"


# --- bounds on one scalar: no signal, geometry -----------------------------------------

class NoSignalParams(Params):
    metric: MetricName = metrics.DIFFICULTY_NO_SIGNAL_FRAC
    bound: float = Field(0.8, ge=0, lt=1, allow_inf_nan=False)
    clear_bound: float = Field(0.6, ge=0, lt=1, allow_inf_nan=False)
    # Groups all solved are a run that has learned its prompts, not one that cannot: only a batch
    # mostly failing (solve rate under this) makes the no-signal share an alarm.
    solve_rate_metric: MetricName = metrics.DIFFICULTY_SOLVE_RATE
    max_solve_rate: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)


class GeometryParams(Params):
    metric: MetricName = metrics.GEOMETRY_RANK1_FRAC
    bound: float = Field(0.95, gt=0, lt=1, allow_inf_nan=False)
    clear_bound: float = Field(0.9, gt=0, lt=1, allow_inf_nan=False)


def _above(p, mem, step, scalars, nonfinite) -> Verdict | None:
    v = scalars.get(p.metric)
    if v is None:
        return None
    return Verdict(v > p.bound, {p.metric: v, "bound": p.bound}, v < p.clear_bound)


def no_signal(p: NoSignalParams, mem, step, scalars, nonfinite) -> Verdict | None:
    v, rate = scalars.get(p.metric), scalars.get(p.solve_rate_metric)
    if v is None:
        return None
    failing = rate is None or rate < p.max_solve_rate
    values = {p.metric: v, "bound": p.bound, "solve_rate": rate}
    return Verdict(v > p.bound and failing, values, v < p.clear_bound or not failing)


def _describe_no_signal(v: dict, p) -> str:
    share = v[p.metric]
    if share > p.bound and (v.get("solve_rate") is None or v["solve_rate"] < p.max_solve_rate):
        return (f"{share:.0%} of the groups are all solved or all failed, so they teach nothing "
                f"(bound {p.bound:.0%}); with solve rate {fmt(v.get('solve_rate'))} the prompts are too hard")
    return f"{share:.0%} of the groups are all solved or all failed; the batch learns again"


def _describe_geometry(v: dict, p) -> str:
    if v[p.metric] <= p.bound:
        return f"rank-1 fraction of the head update {fmt(v[p.metric])} is back under {fmt(p.bound)}"
    return (f"rank-1 fraction of the head update {fmt(v[p.metric])} > {fmt(p.bound)}: the update "
            "is concentrating into one direction")


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
    # (params, memory) -> the run's sign and difficulty regimes, for the API; None: holds none.
    regime: Callable[[Any, dict], dict | None] | None = None


DETECTORS: dict[str, DetectorDef] = {
    "threshold": DetectorDef("Threshold", ThresholdParams, threshold, _describe_threshold),
    "entropy_collapse": DetectorDef("Entropy collapse", EntropyCollapseParams, entropy_collapse, describe_collapse),
    "entropy_early_warning": DetectorDef("Entropy early warning", EarlyWarningParams, entropy_early_warning,
                                         describe_early, early_warning_forecast),
    "sign_imbalance": DetectorDef("Sign regime", SignParams, sign_regime, describe_sign, regime=regime_view),
    "heavy_tails": DetectorDef("Heavy-tailed advantages", HeavyTailsParams, heavy_tails, _describe_tails),
    "no_signal": DetectorDef("No learning signal", NoSignalParams, no_signal, _describe_no_signal),
    "diversity_collapse": DetectorDef("Diversity collapse", DiversityParams, diversity_collapse, describe_diversity),
    "geometry_collapse": DetectorDef("Weight-geometry collapse", GeometryParams, _above, _describe_geometry),
    "nonfinite": DetectorDef("Non-finite values", NonfiniteParams, nonfinite_values, _describe_nonfinite),
}
BUILTIN = tuple(name for name in DETECTORS if name != "threshold")
