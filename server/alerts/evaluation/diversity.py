"""Diversity collapse, told apart from learning.

The share of distinct completions and the gap pass@G - pass@1 both shrink when a policy
collapses onto few answers, and both shrink too when it simply learns: as pass@1 rises to 1
the gap closes and groups agree on the right answer. What separates the two is coverage,
pass@G = pass@1 + gap, the share of prompts some sample still solves: learning keeps it,
collapse loses it. So a run whose (smoothed) pass@1 is up on its baseline while its coverage
holds is learning, and its shrinking diversity raises nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import Params, Verdict, baseline, fmt
from fadewatch.server.schemas import MetricName

__all__ = ["DiversityParams", "diversity_collapse", "describe_diversity"]


class DiversityParams(Params):
    distinct_metric: MetricName = metrics.DIVERSITY_DISTINCT_FRAC
    distinct_fraction: float | None = Field(0.5, gt=0, lt=1, allow_inf_nan=False)
    gap_metric: MetricName = metrics.DIVERSITY_PASS_GAP
    gap_fraction: float | None = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    min_gap_baseline: float = Field(0.05, ge=0, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)
    smooth_steps: int = Field(10, ge=1, le=1000)
    # clears once every watched metric is back above this multiple of its trip level
    clear_factor: float = Field(1.25, ge=1, allow_inf_nan=False)
    pass1_metric: MetricName = metrics.pass_at(1)
    # learning: pass@1 at least this far above its baseline while coverage is no more than this far below its own
    learning_margin: float = Field(0.1, ge=0, le=1, allow_inf_nan=False)


def _smoothed(mem: dict, key: str, value: float, span: int) -> float:
    n = mem.get(key + "n", 0) + 1
    old = mem.get(key, value)
    mem[key], mem[key + "n"] = old + max(2.0 / (span + 1), 1.0 / n) * (value - old), n
    return mem[key]


def _learning(p: DiversityParams, mem: dict, scalars: dict) -> None:
    """Keep pass@1 and coverage (pass@1 + gap) smoothed, and their baselines."""
    pass1, gap = scalars.get(p.pass1_metric), scalars.get(p.gap_metric)
    if pass1 is None or gap is None:
        return
    _smoothed(mem, "s1", pass1, p.smooth_steps)
    _smoothed(mem, "sc", pass1 + gap, p.smooth_steps)
    if mem.get("pcn", 0) < p.baseline_steps:
        baseline(mem, "p1", pass1, p.baseline_steps)
        baseline(mem, "pc", pass1 + gap, p.baseline_steps)


def _learning_now(p: DiversityParams, mem: dict) -> dict | None:
    """pass@1 and coverage against their baselines; None until both baselines are in."""
    if mem.get("pcn", 0) < p.baseline_steps:
        return None
    p1, cov = mem["s1"], mem["sc"]
    b1, bc = mem["p1s"] / mem["p1n"], mem["pcs"] / mem["pcn"]
    learning = p1 >= b1 + p.learning_margin and cov >= bc - p.learning_margin
    return {"pass@1": p1, "pass@1:baseline": b1, "coverage": cov, "coverage:baseline": bc, "learning": learning}


def diversity_collapse(p: DiversityParams, mem, step, scalars, nonfinite) -> Verdict | None:
    values: dict[str, Any] = {}
    tripped, clear = [], True
    for metric, fraction, key, minimum in ((p.distinct_metric, p.distinct_fraction, "d", 0.0),
                                           (p.gap_metric, p.gap_fraction, "g", p.min_gap_baseline)):
        v = scalars.get(metric)
        if fraction is None or v is None:
            continue
        smooth = _smoothed(mem, "s" + key, v, p.smooth_steps)
        base = baseline(mem, key, v, p.baseline_steps)
        if base is None or base <= minimum:
            continue
        values[metric], values[metric + ":baseline"] = smooth, base
        if smooth < fraction * base:
            tripped.append(metric)
        if smooth < min(1.0, fraction * p.clear_factor) * base:
            clear = False
    _learning(p, mem, scalars)
    if not values:
        return None
    values["tripped"] = tripped
    if clear and not tripped:  # nothing to tell learning from: the common, quiet step
        return Verdict(False, values, True)
    learning = _learning_now(p, mem)
    if learning is not None:
        values.update(learning)
    quiet = learning is not None and learning["learning"]
    return Verdict(bool(tripped) and not quiet, values, clear or quiet)


def describe_diversity(v: dict, p) -> str:
    parts = [f"{m} {fmt(v[m])} is {v[m] / v[m + ':baseline']:.0%} of its baseline {fmt(v[m + ':baseline'])}"
             for m in v.get("tripped", ())]
    if parts and v.get("learning"):
        return ("diversity shrinks as the run learns (pass@1 " f"{fmt(v['pass@1:baseline'])} -> {fmt(v['pass@1'])}, "
                f"coverage held at {fmt(v['coverage'])}): not a collapse")
    if parts:
        cover = (f"; pass@1 {fmt(v['pass@1'])}, coverage pass@G {fmt(v['coverage'])} (baseline "
                 f"{fmt(v['coverage:baseline'])})") if "coverage" in v else ""
        return "diversity collapse: " + "; ".join(parts) + cover
    return "diversity is back above its bounds"
