"""The sign and difficulty regimes of a run, and the alert the sign rule raises from them.

A regime is state, not an alarm: success-heavy mass (b > 0) drives entropy down,
failure-heavy mass (b < 0) concentrates the output head's update into one direction, and
either can be the intended phase of a schedule (FADE suppresses failures on purpose once
entropy is under its target). So the sign rule fires only when the regime's predicted
consequence begins: success-heavy mass with entropy already falling, or failure-heavy mass
with the head's rank-1 fraction rising. Without head-geometry data a failure-heavy regime
is a note in the regime, never an alert.

Both regimes are smoothed (an exponential mean over `smooth_steps`) and have hysteresis (a
regime is entered past `bound` and left only inside `clear_bound`), so they change seldom;
their spans are kept for the charts' bands. `regime_view` reads them for the API.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from fadewatch.protocol import metrics
from fadewatch.server.alerts.evaluation.detector_base import Params, Verdict, baseline, fmt, push
from fadewatch.server.schemas import MetricName

__all__ = ["SignParams", "sign_regime", "describe_sign", "regime_view", "sign_reading", "difficulty_reading"]

MAX_SPANS = 200


class SignParams(Params):
    metric: MetricName = metrics.SIGN_BALANCE
    bound: float = Field(0.5, gt=0, lt=1, allow_inf_nan=False)
    clear_bound: float = Field(0.3, ge=0, lt=1, allow_inf_nan=False)
    smooth_steps: int = Field(10, ge=1, le=1000)
    # success-heavy: the consequence has begun once the smoothed entropy is `entropy_drop` below its
    # baseline and still falling: followed at its pace over the last `entropy_window` steps of
    # success-heavy mass, it meets the collapse level (`fraction` x baseline) within
    # `entropy_horizon` steps (or is there already)
    entropy_metric: MetricName = metrics.ENTROPY_MEAN
    entropy_drop: float = Field(0.15, gt=0, lt=1, allow_inf_nan=False)
    baseline_steps: int = Field(10, ge=1, le=10_000)
    fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    entropy_window: int = Field(50, ge=10, le=500)
    entropy_horizon: int = Field(65, ge=1, le=10_000_000)
    # failure-heavy: ... once the rank-1 fraction, already above `rank1_floor` (balanced methods
    # settle near 0.6), rises significantly over its last `rank1_window` measurements (t statistic
    # >= rank1_min_z) and by `rank1_rise` above their low
    rank1_metric: MetricName = metrics.GEOMETRY_RANK1_FRAC
    rank1_floor: float = Field(0.8, ge=0, lt=1, allow_inf_nan=False)
    rank1_rise: float = Field(0.05, gt=0, lt=1, allow_inf_nan=False)
    rank1_window: int = Field(6, ge=3, le=100)
    rank1_min_z: float = Field(2.0, ge=0, allow_inf_nan=False)
    # difficulty regime: hard below, easy above (each left `difficulty_margin` the other side)
    solve_rate_metric: MetricName = metrics.DIFFICULTY_SOLVE_RATE
    hard_below: float = Field(0.2, gt=0, lt=1, allow_inf_nan=False)
    easy_above: float = Field(0.8, gt=0, lt=1, allow_inf_nan=False)
    difficulty_margin: float = Field(0.05, ge=0, lt=0.5, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> SignParams:
        if self.clear_bound > self.bound:
            raise ValueError("clear_bound must not exceed bound (a regime is left inside the bound it is entered at)")
        if self.hard_below >= self.easy_above:
            raise ValueError("hard_below must be below easy_above")
        return self


def _ema(mem: dict, key: str, value: float, span: int) -> float:
    """Exponential mean with weight 2/(span+1), started as a plain mean over the first values."""
    n = mem.get(key + "n", 0)
    if n <= span:  # counted only while the plain mean still weighs more
        mem[key + "n"] = n = n + 1
    weight = 2.0 / (span + 1)
    if 1.0 / n > weight:
        weight = 1.0 / n
    old = mem.get(key, value)
    mem[key] = new = old + weight * (value - old)
    return new


def _sign_state(p: SignParams, b: float, state: str | None) -> str:
    if state == "success-heavy" and b > p.clear_bound or state != "success-heavy" and b > p.bound:
        return "success-heavy"
    if state == "failure-heavy" and b < -p.clear_bound or state != "failure-heavy" and b < -p.bound:
        return "failure-heavy"
    return "balanced"


def _difficulty_state(p: SignParams, rate: float, state: str | None) -> str:
    m = p.difficulty_margin
    if rate < p.hard_below or (state == "hard" and rate < p.hard_below + m):
        return "hard"
    if rate > p.easy_above or (state == "easy" and rate > p.easy_above - m):
        return "easy"
    return "mid"


def _snapshot(p: SignParams, mem: dict, step: int) -> None:
    """The smoothed entropy every tenth of the window (O(1) a step): its pace is read from them."""
    snaps = mem.setdefault("hs", [])
    if not snaps or step - snaps[-1][0] >= p.entropy_window // 10:
        push(snaps, [step, mem["h"]], 11)


def _pace(p: SignParams, mem: dict) -> tuple[float, int] | None:
    """(entropy change per step over the window, steps it spans), once it spans the window."""
    snaps = mem.get("hs") or []
    if len(snaps) < 2 or snaps[-1][0] - snaps[0][0] < p.entropy_window:
        return None
    first = next(s for s in snaps if snaps[-1][0] - s[0] <= p.entropy_window)
    span = snaps[-1][0] - first[0]
    return (mem["h"] - first[1]) / span if span else 0.0, span


def _rank1_trend(p: SignParams, mem: dict) -> dict | None:
    """Slope (per step) and its t statistic over the last measurements, and the rise above their low."""
    window = mem.get("r") or []
    if len(window) < p.rank1_window:
        return None
    n = len(window)
    xs, ys = [s for s, _ in window], [v for _, v in window]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys)) / max(n - 2, 1)
    se = math.sqrt(resid / sxx)
    z = slope / se if se > 0 else (math.inf if slope > 0 else 0.0)
    recent = sum(ys[-3:]) / len(ys[-3:])
    return {"rank1_frac": ys[-1], "rank1_low": min(ys), "rank1_slope": slope, "rank1_z": min(z, 1e9),
            "rank1_rise": recent - min(ys)}


def _mark_span(mem: dict, step: int) -> None:
    spans = mem.setdefault("sp", [])
    now = [mem.get("sg"), mem.get("dg")]
    if not spans or spans[-1][1:] != now:
        push(spans, [step, *now], MAX_SPANS)


def sign_regime(p: SignParams, mem: dict, step: int, scalars: dict, nonfinite) -> Verdict | None:
    b, ent = scalars.get(p.metric), scalars.get(p.entropy_metric)
    rate, rank1 = scalars.get(p.solve_rate_metric), scalars.get(p.rank1_metric)
    if ent is not None:
        if "hb" not in mem:  # the baseline, until it is complete
            base = baseline(mem, "e", ent, p.baseline_steps)
            if base is not None:
                mem["hb"] = base
        _ema(mem, "h", ent, p.smooth_steps)
        if mem.get("sg") == "success-heavy":  # the pace only matters under success-heavy mass
            _snapshot(p, mem, step)
        elif "hs" in mem:
            del mem["hs"]
    if rank1 is not None:
        push(mem.setdefault("r", []), [step, rank1], p.rank1_window)
    before = (mem.get("sg"), mem.get("dg"))
    if rate is not None:
        mem["dg"] = _difficulty_state(p, _ema(mem, "p", rate, p.smooth_steps), before[1])
        if mem["dg"] != before[1]:
            mem["ds"] = step
    if b is not None:
        sb = _ema(mem, "b", b, p.smooth_steps)
        mem["sg"] = _sign_state(p, sb, before[0])
        if mem["sg"] != before[0]:
            mem["ss"] = step
    if (mem.get("sg"), mem.get("dg")) != before:
        _mark_span(mem, step)
    if b is None:
        return None
    sign = mem["sg"]
    values: dict[str, Any] = {"balance": sb, "regime": sign, "direction": sign, "since_step": mem.get("ss", step),
                              "bound": p.bound, "difficulty": mem.get("dg")}
    if sign == "balanced":
        return Verdict(False, values, True)
    hit, clear, found = _consequence(p, mem)
    values.update(found)
    return Verdict(hit, values, clear)


def _consequence(p: SignParams, mem: dict) -> tuple[bool, bool, dict]:
    """(begun, cleared, values): whether the sign regime's predicted consequence has begun."""
    sign = mem.get("sg")
    out: dict[str, Any] = {"consequence": None, "note": None}
    if sign == "success-heavy":
        out["points_to"] = "entropy collapse"
        if not mem.get("hb"):
            out["note"] = "success-heavy mass drives entropy down; no entropy logged to see it begin"
            return False, True, out
        ratio, level = mem["h"] / mem["hb"], p.fraction * mem["hb"]
        out.update(entropy=mem["h"], entropy_baseline=mem["hb"], entropy_ratio=ratio)
        if mem["h"] <= level:  # the consequence has come: it holds while entropy stays down
            out["consequence"] = "entropy collapsed"
            return True, False, out
        if ratio > 1 - p.entropy_drop / 2:  # entropy holds: nothing to follow (and clear)
            out["note"] = "success-heavy mass drives entropy down; entropy still holds"
            return False, True, out
        pace = _pace(p, mem)
        if pace is not None and pace[0] < 0:
            out.update(entropy_pace=pace[0], steps_to_level=round((mem["h"] - level) / -pace[0]))
        if ratio <= 1 - p.entropy_drop and out.get("steps_to_level", p.entropy_horizon + 1) <= p.entropy_horizon:
            out["consequence"] = "entropy falling"
            return True, False, out
        out["note"] = "success-heavy mass drives entropy down; entropy is not heading for collapse now"
        return False, pace is None or pace[0] >= 0, out
    if sign == "failure-heavy":
        out["points_to"] = "weight-geometry collapse"
        trend = _rank1_trend(p, mem)
        if trend is None:
            out["note"] = ("failure-heavy mass can concentrate the head's update; no head geometry logged "
                           "(run.watch_head) to see it begin: a note, no alert")
            return False, True, out
        out.update(trend)
        if (trend["rank1_z"] >= p.rank1_min_z and trend["rank1_rise"] >= p.rank1_rise
                and trend["rank1_frac"] >= p.rank1_floor):
            out["consequence"] = "head geometry concentrating"
            return True, False, out
        out["note"] = "failure-heavy mass with the head's geometry steady (as in FADE's failure suppression): no alarm"
        return False, trend["rank1_slope"] <= 0 or trend["rank1_frac"] < p.rank1_floor - p.rank1_rise, out
    return False, True, out


def describe_sign(v: dict, p) -> str:
    b, regime = v.get("balance", 0.0), v.get("regime", "balanced")
    if v.get("consequence") == "entropy collapsed":
        return (f"success-heavy mass (smoothed b = {b:+.2f} since step {v['since_step']}) and entropy "
                f"{fmt(v['entropy'])} at the collapse level: the entropy collapse it predicts has come")
    if v.get("consequence") == "entropy falling":
        return (f"success-heavy mass (smoothed b = {b:+.2f} since step {v['since_step']}) and entropy already "
                f"{1 - v['entropy_ratio']:.0%} under its baseline {fmt(v['entropy_baseline'])}: entropy collapse "
                "is under way")
    if v.get("consequence") == "head geometry concentrating":
        return (f"failure-heavy mass (smoothed b = {b:+.2f} since step {v['since_step']}) and the head update's "
                f"rank-1 fraction rising to {fmt(v['rank1_frac'])} (+{v['rank1_rise']:.2f} over its recent low): "
                "weight-geometry collapse is under way")
    if regime == "balanced":
        return f"sign balance b = {b:+.2f} is back within ±{fmt(p.clear_bound)}"
    return f"{regime} mass (b = {b:+.2f}) without its consequence: a regime, no longer an alarm"


def sign_reading(regime: str | None, b: float | None) -> str:
    if b is None or regime is None:
        return "not logged (log advantages to see the sign axis)"
    if regime == "success-heavy":
        return f"success-heavy (b = {b:+.2f}): positive advantage mass dominates, which drives policy entropy down"
    if regime == "failure-heavy":
        return (f"failure-heavy (b = {b:+.2f}): negative mass dominates; entropy holds up, but the output-head "
                "update can concentrate into one direction")
    return f"balanced (b = {b:+.2f})"


def difficulty_reading(regime: str | None, rate: float | None) -> str:
    if rate is None or regime is None:
        return "not logged (log rewards and group ids to see the difficulty axis)"
    where = {"hard": "hard prompts, most rollouts fail", "easy": "easy prompts, most rollouts succeed",
             "mid": "mid-difficulty prompts"}[regime]
    return f"{where} (smoothed solve rate {rate:.2f})"


def regime_view(p: SignParams, mem: dict) -> dict | None:
    """The run's regimes as the sign rule holds them: state, smoothed values, since when, and the spans."""
    if not mem or ("sg" not in mem and "dg" not in mem):
        return None
    spans = [{"start": s, "sign": sg, "difficulty": dg} for s, sg, dg in mem.get("sp", [])]
    for a, nxt in zip(spans, spans[1:]):
        a["end"] = nxt["start"]
    if spans:
        spans[-1]["end"] = None
    _, _, found = _consequence(p, mem)
    return {
        "sign": {"state": mem.get("sg"), "balance": mem.get("b"), "since_step": mem.get("ss"),
                 "reading": sign_reading(mem.get("sg"), mem.get("b"))},
        "difficulty": {"state": mem.get("dg"), "solve_rate": mem.get("p"), "since_step": mem.get("ds"),
                       "reading": difficulty_reading(mem.get("dg"), mem.get("p"))},
        "consequence": found["consequence"], "note": found["note"], "values": found, "spans": spans,
    }
