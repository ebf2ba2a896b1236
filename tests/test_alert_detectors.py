"""Every built-in detector on synthetic streams with known answers: it fires where it should, at the
step it should, and stays silent on healthy streams. Pure: the same function the engine runs."""

from __future__ import annotations

import json
import math

import pytest

from fadewatch.server.alerts.evaluation.machine import Track, advance
from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES, RuleSpec, compile_rule

DEFAULTS = {r.name: r for r in DEFAULT_RULES}


def _rule(spec):
    spec = DEFAULTS[spec] if isinstance(spec, str) else RuleSpec.model_validate(spec)
    return compile_rule(spec, "test")


def replay(spec, stream: dict[str, list], track: Track | None = None, start: int = 0, seconds_per_step=0.0):
    """Feed the columns step by step; returns the transitions as (kind, step) and the track."""
    rule = _rule(spec)
    t = track or Track.for_rule(rule, "fp")
    n = len(next(iter(stream.values())))
    out = []
    for i in range(n):
        step = start + i
        scalars = {k: v[i] for k, v in stream.items() if v[i] is not None and math.isfinite(v[i])}
        nonfinite = [k for k, v in stream.items() if v[i] is not None and not math.isfinite(v[i])] or None
        kind = advance(rule, t, step, scalars, nonfinite, step * seconds_per_step)
        if kind:
            out.append((kind, step))
        if kind in ("firing", "repeat"):  # as the engine does once the message is queued
            t.notified, t.last_notified_at = True, step * seconds_per_step
    return out, t


def wobble(n: int, scale: float, seed: int = 1) -> list[float]:
    """Deterministic zero-mean noise."""
    return [scale * math.sin(seed * 12.9898 * (i + 1)) for i in range(n)]


def ramp(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]


# --- entropy collapse ---------------------------------------------------------------------

def test_entropy_collapse_fires_after_five_steps_below_30_percent_of_the_baseline_and_resolves():
    # Baseline 2.0 (steps 0-9), level 0.6; below it from step 52 on, so firing at 56.
    entropy = [2.0] * 20 + ramp(2.0, 0.2, 41) + [0.2] * 10 + [1.5] * 10
    transitions, t = replay("entropy_collapse", {"entropy/mean": entropy})
    assert transitions == [("firing", 56), ("resolved", 76)]  # 6th clear step (keep_firing_steps 5)
    assert t.values["baseline"] == 2.0


def test_entropy_collapse_stays_silent_on_a_healthy_slow_decline():
    entropy = [x + w for x, w in zip(ramp(2.0, 0.9, 300), wobble(300, 0.05))]
    assert replay("entropy_collapse", {"entropy/mean": entropy})[0] == []


def test_entropy_collapse_floor_catches_low_entropy_from_the_start():
    spec = {"name": "floor", "detector": "entropy_collapse", "params": {"floor": 0.1}}
    assert replay(spec, {"entropy/mean": [0.05] * 3})[0] == [("firing", 0)]


# --- entropy early warning -----------------------------------------------------------------

def test_early_warning_covariance_counts_once_entropy_nears_the_collapse_level():
    # Covariance persistently positive throughout; entropy 2.0 (baseline), then at 1.2 from step 40:
    # the covariance signal only counts below level + 0.5 x (baseline - level) = 0.6 + 0.7 = 1.3,
    # judged on the mean of the last 10 entropies, below 1.3 from step 48.
    n = 60
    cov = [0.05 + w for w in wobble(n, 0.01)]
    entropy = [2.0] * 40 + [1.2] * 20
    spec = {"name": "cov", "detector": "entropy_early_warning", "params": {"trend_min_z": 1e9},
            "for_steps": 3}
    transitions, t = replay(spec, {"entropy/cov_logp_adv": cov, "entropy/mean": entropy})
    assert transitions == [("firing", 50)]
    assert t.values["signals"] == ["covariance"] and t.values["cov_positive_frac"] == 1.0
    assert t.values["cov_zone_below"] == pytest.approx(1.3)
    # Without entropy there is no level to be near: the covariance alone decides.
    transitions, _ = replay(spec, {"entropy/cov_logp_adv": cov})
    assert transitions == [("firing", 21)]


def test_early_warning_projects_the_step_where_the_entropy_trend_meets_the_collapse_level():
    # Flat 2.0, then -0.01 per step from step 20: reaches the level 0.6 at step 160. The warning
    # comes once that is within the horizon (the 50-step window), three tripping steps later.
    entropy = [2.0] * 20 + [2.0 - 0.01 * i + w for i, w in enumerate(wobble(160, 0.002))]
    transitions, t = replay("entropy_early_warning", {"entropy/mean": entropy[:113]})
    assert transitions == [("firing", 112)]
    assert t.values["signals"] == ["trend"]
    assert abs(t.values["projected_step"] - 160) <= 2
    # An accelerating fall (crossing the level at step 188) is caught ahead of it too.
    falling = [2.0] * 20 + [2.0 - 0.00005 * i * i + w for i, w in enumerate(wobble(200, 0.02))]
    (kind, step), = replay("entropy_early_warning", {"entropy/mean": falling})[0]
    assert kind == "firing" and 150 <= step <= 185


@pytest.mark.parametrize("plateau, tau", [(1.0, 20), (1.0, 40), (1.2, 20), (1.2, 80)])
def test_early_warning_stays_silent_on_a_fast_fall_that_levels_off(plateau, tau):
    # As a run that sheds entropy early and then holds it (FADE toward its target): a line
    # through the steep start would cross the level; the levelling-off reading does not.
    entropy = [plateau + (2.0 - plateau) * math.exp(-i / tau) + w for i, w in enumerate(wobble(300, 0.05, seed=7))]
    assert replay("entropy_early_warning", {"entropy/mean": entropy})[0] == []


def test_early_warning_stays_silent_on_noise_and_a_flat_entropy():
    stream = {"entropy/cov_logp_adv": wobble(300, 0.05, seed=3),
              "entropy/mean": [1.5 + w for w in wobble(300, 0.05, seed=5)]}
    assert replay("entropy_early_warning", stream)[0] == []


# --- sign imbalance, heavy tails, no signal, geometry ----------------------------------------

@pytest.mark.parametrize("b, direction, points_to", [(0.7, "success-heavy", "entropy collapse"),
                                                     (-0.8, "failure-heavy", "weight-geometry collapse")])
def test_sign_imbalance_fires_after_ten_steps_and_names_the_collapse_it_points_to(b, direction, points_to):
    transitions, t = replay("sign_imbalance", {"sign/balance": [0.1] * 5 + [b] * 12})
    assert transitions == [("firing", 14)]
    assert t.values["direction"] == direction and t.values["points_to"] == points_to


def test_sign_imbalance_is_silent_inside_the_bound_and_on_short_excursions():
    b = [0.4, -0.45] * 20 + ([0.9] * 9 + [0.1]) * 3
    assert replay("sign_imbalance", {"sign/balance": b})[0] == []


@pytest.mark.parametrize("metric, value", [("adv/kurtosis", 35.0), ("adv/max_abs_over_std", 11.0),
                                           ("difficulty/ess_frac", 0.05)])
def test_heavy_tails_fires_on_each_of_its_bounds(metric, value):
    calm = {"adv/kurtosis": 1.0, "adv/max_abs_over_std": 3.0, "difficulty/ess_frac": 0.7}
    stream = {k: [v] * 12 for k, v in calm.items()}
    stream[metric] = [value] * 12
    transitions, t = replay("heavy_tails", stream)
    assert transitions == [("firing", 9)] and t.values["tripped"] == [metric]
    assert replay("heavy_tails", {k: [v] * 50 for k, v in calm.items()})[0] == []


def test_no_signal_fires_when_most_groups_teach_nothing():
    assert replay("no_signal", {"difficulty/no_signal_frac": [0.5] * 5 + [0.9] * 10})[0] == [("firing", 14)]
    assert replay("no_signal", {"difficulty/no_signal_frac": [0.75] * 50})[0] == []


def test_geometry_collapse_counts_evaluations_not_steps():
    # Logged every 5 steps: the three evaluations above 0.95 are at steps 10, 15, 20.
    rank1 = [0.7 if i < 10 else 0.97 if i % 5 == 0 else None for i in range(25)]
    rank1[0] = 0.7
    assert replay("geometry_collapse", {"geometry/rank1_frac": rank1})[0] == [("firing", 20)]
    assert replay("geometry_collapse", {"geometry/rank1_frac": [0.9] * 30})[0] == []


# --- diversity ------------------------------------------------------------------------------

def test_diversity_collapse_fires_on_distinct_share_or_pass_gap_falling_below_baseline():
    distinct = [0.9] * 10 + [0.3] * 12
    transitions, t = replay("diversity_collapse", {"diversity/distinct_frac": distinct})
    assert transitions == [("firing", 19)] and t.values["tripped"] == ["diversity/distinct_frac"]
    gap = [0.2] * 10 + [0.04] * 12
    transitions, t = replay("diversity_collapse", {"diversity/pass_gap": gap})
    assert transitions == [("firing", 19)] and t.values["tripped"] == ["diversity/pass_gap"]


def test_diversity_collapse_is_silent_on_a_mild_decline_and_ignores_a_gap_that_was_never_there():
    assert replay("diversity_collapse", {"diversity/distinct_frac": ramp(0.9, 0.55, 100)})[0] == []
    assert replay("diversity_collapse", {"diversity/pass_gap": [0.01] * 10 + [0.0] * 20})[0] == []


# --- non-finite and thresholds --------------------------------------------------------------

def test_nonfinite_fires_at_once_and_resolves_after_keep_firing_steps():
    adv = [0.1, math.nan, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    transitions, t = replay("nonfinite", {"adv/mean": adv, "loss": [1.0] * 9})
    assert transitions == [("firing", 1), ("resolved", 7)] and t.severity == "critical"
    only_loss = {"name": "nl", "detector": "nonfinite", "params": {"metrics": ["loss"]}}
    assert replay(only_loss, {"adv/mean": adv})[0] == []


def test_threshold_for_steps_keep_firing_warmup_and_repeat():
    spec = {"name": "kl", "metric": "kl", "condition": "> 1", "for_steps": 3, "keep_firing_steps": 2,
            "warmup_steps": 2, "repeat_interval_s": 10}
    kl = [5, 5, 0, 5, 5, 0, 5, 5, 5, 5, 0, 5, 5, 0, 0, 0, 5]
    transitions, _ = replay(spec, {"kl": kl}, seconds_per_step=4.0)
    # Warm-up eats steps 0-1; 3,4 is too short; 6,7,8 fires at 8; repeat at 11 (12 s later);
    # clears at 13, 14, 15: the third clear step resolves (keep_firing_steps 2).
    assert transitions == [("firing", 8), ("repeat", 11), ("resolved", 15)]


def test_a_missing_input_neither_trips_nor_clears():
    kl = [5, None, 5, None, None, 5, 0]
    assert replay({"name": "kl", "metric": "kl", "condition": "> 1", "for_steps": 3}, {"kl": kl})[0] == [
        ("firing", 5), ("resolved", 6)]


# --- incremental state survives a round trip through the database's JSON ----------------------

@pytest.mark.parametrize("name", ["entropy_collapse", "entropy_early_warning", "diversity_collapse"])
def test_detector_memory_resumes_from_its_json_form(name):
    n = 160
    stream = {"entropy/mean": [2.0] * 20 + ramp(2.0, 0.1, n - 20),
              "entropy/cov_logp_adv": [0.02 + w for w in wobble(n, 0.01)],
              "diversity/distinct_frac": ramp(0.9, 0.2, n), "diversity/pass_gap": ramp(0.3, 0.02, n)}
    whole, _ = replay(name, stream)
    assert whole, "the stream trips the detector"
    first = {k: v[:70] for k, v in stream.items()}
    rest = {k: v[70:] for k, v in stream.items()}
    part1, t = replay(name, first)
    stored = json.loads(json.dumps({f: getattr(t, f) for f in Track.__slots__ if f != "dirty"}))
    part2, _ = replay(name, rest, track=Track(**stored), start=70)
    assert part1 + part2 == whole
