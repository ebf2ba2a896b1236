"""Every built-in detector on synthetic streams with known answers: it fires where it should, at the
step it should, and stays silent on healthy streams. Pure: the same function the engine runs."""

from __future__ import annotations

import json
import math

import pytest

from fadewatch.server.alerts.evaluation.machine import Track, advance
from fadewatch.server.alerts.evaluation.compiled import compile_rule
from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES, RuleSpec

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

def test_entropy_collapse_fires_on_the_10_step_mean_and_clears_above_40_percent_after_its_hold():
    # Baseline 2.0 (steps 0-9), level 0.6. The ramp passes 0.6 at step 51.1, so the mean of the last
    # 10 entropies (the value 4.5 steps back) passes it at step 56: firing at once (for_steps 1).
    # At 1.5 from step 71, the mean is back above 0.4 x 2.0 from step 75; the 21st clear step resolves.
    entropy = [2.0] * 20 + ramp(2.0, 0.2, 41) + [0.2] * 10 + [1.5] * 30
    transitions, t = replay("entropy_collapse", {"entropy/mean": entropy})
    assert transitions == [("firing", 56), ("resolved", 95)]
    assert t.values["baseline"] == 2.0


def test_entropy_collapse_stays_silent_on_a_healthy_slow_decline():
    entropy = [x + w for x, w in zip(ramp(2.0, 0.9, 300), wobble(300, 0.05))]
    assert replay("entropy_collapse", {"entropy/mean": entropy})[0] == []


def test_entropy_collapse_floor_catches_low_entropy_from_the_start():
    spec = {"name": "floor", "detector": "entropy_collapse", "params": {"floor": 0.1, "smooth_steps": 1}}
    assert replay(spec, {"entropy/mean": [0.05] * 3})[0] == [("firing", 0)]
    smoothed = {"name": "floor", "detector": "entropy_collapse", "params": {"floor": 0.1}}
    assert replay(smoothed, {"entropy/mean": [0.05] * 12})[0] == [("firing", 9)]  # once 10 values are in


def test_entropy_collapse_hovering_at_its_level_makes_one_episode():
    # The 10-step mean wanders about the level 0.6 for 200 steps: one firing, never resolved.
    entropy = [2.0] * 10 + [0.6 + w for w in wobble(200, 0.25, seed=4)]
    transitions, _ = replay("entropy_collapse", {"entropy/mean": entropy})
    assert [k for k, _ in transitions] == ["firing"]


# --- entropy early warning -----------------------------------------------------------------

def test_early_warning_covariance_is_off_by_default_and_when_on_counts_once_entropy_nears_the_level():
    # Covariance persistently positive throughout; entropy 2.0 (baseline), then at 1.2 from step 40:
    # the covariance signal only counts below level + 0.5 x (baseline - level) = 0.6 + 0.7 = 1.3,
    # judged on the mean of the last 10 entropies, below 1.3 from step 48.
    n = 60
    cov = [0.05 + w for w in wobble(n, 0.01)]
    entropy = [2.0] * 40 + [1.2] * 20
    spec = {"name": "cov", "detector": "entropy_early_warning", "params": {"trend_min_z": 1e9, "covariance": True},
            "for_steps": 3}
    transitions, t = replay(spec, {"entropy/cov_logp_adv": cov, "entropy/mean": entropy})
    assert transitions == [("firing", 50)]
    assert t.values["signals"] == ["covariance"] and t.values["cov_positive_frac"] == 1.0
    assert t.values["cov_zone_below"] == pytest.approx(1.3)
    # Without entropy there is no level to be near: the covariance alone decides.
    transitions, _ = replay(spec, {"entropy/cov_logp_adv": cov})
    assert transitions == [("firing", 21)]
    assert replay("entropy_early_warning", {"entropy/cov_logp_adv": cov, "entropy/mean": entropy})[0] == []


def test_early_warning_projects_the_step_where_the_entropy_trend_meets_the_collapse_level():
    # Flat 2.0, then -0.01 per step from step 20: reaches the level 0.6 at step 160. The forecast
    # trips once that is within the horizon (65 steps), from step 95; six tripping steps later it fires.
    entropy = [2.0] * 20 + [2.0 - 0.01 * i + w for i, w in enumerate(wobble(160, 0.002))]
    transitions, t = replay("entropy_early_warning", {"entropy/mean": entropy[:120]})
    assert transitions == [("firing", 100)]
    assert t.values["signals"] == ["trend"]
    assert abs(t.values["projected_step"] - 160) <= 2
    assert t.values["early_step"] <= t.values["projected_step"] <= t.values["late_step"]
    assert t.values["steps_to_level"] == t.values["projected_step"] - 119  # read at the newest step
    # An accelerating fall (crossing the level at step 188) is caught ahead of it too.
    falling = [2.0] * 20 + [2.0 - 0.00005 * i * i + w for i, w in enumerate(wobble(200, 0.02))]
    (kind, step), = replay("entropy_early_warning", {"entropy/mean": falling})[0]
    assert kind == "firing" and 130 <= step <= 168


def test_early_warning_follows_a_fall_under_failure_heavy_mass_half_as_far():
    # The same fall, with failure-heavy mass (b = -0.9), which props entropy up: the horizon halves,
    # so it trips from step 129 (the level is met at 161) and fires six tripping steps later.
    entropy = [2.0] * 20 + [2.0 - 0.01 * i + w for i, w in enumerate(wobble(160, 0.002))]
    stream = {"entropy/mean": entropy[:150], "sign/balance": [-0.9] * 150}
    transitions, t = replay("entropy_early_warning", stream)
    assert transitions == [("firing", 134)] and t.values["horizon"] == 32


@pytest.mark.parametrize("plateau, tau", [(1.0, 20), (1.0, 40), (1.2, 20), (1.2, 80)])
def test_early_warning_stays_silent_on_a_fast_fall_that_levels_off(plateau, tau):
    # As a run that sheds entropy early and then holds it (FADE toward its target): a line
    # through the steep start would cross the level; the levelling-off reading does not.
    entropy = [plateau + (2.0 - plateau) * math.exp(-i / tau) + w for i, w in enumerate(wobble(300, 0.05, seed=7))]
    assert replay("entropy_early_warning", {"entropy/mean": entropy})[0] == []


def test_early_warning_holds_through_a_stalled_fall_and_clears_once_entropy_recovers():
    # A fall from step 20 fires the warning at 101; it stops at 1.11 for 200 steps, then falls again
    # (FADE at learning rate 4 on the detection corpus). The forecast alone clears during the stall
    # and fires a second episode; the episode's hysteresis holds until entropy is back above
    # clear_fraction x baseline = 0.9 x 2.0 (where a warning could not begin).
    fall_and_stall = [2.0] * 20 + [2.0 - 0.01 * i for i in range(90)] + [1.11] * 200

    def stream(tail):
        entropy = fall_and_stall + tail
        return {"entropy/mean": [x + w for x, w in zip(entropy, wobble(len(entropy), 0.002, seed=3))]}

    resumed = stream([1.11 - 0.01 * i for i in range(1, 60)])
    forecast_alone = {"name": "ew", "detector": "entropy_early_warning", "params": {"clear_fraction": None},
                      "for_steps": 6, "keep_firing_steps": 100}
    assert [k for k, _ in replay(forecast_alone, resumed)[0]] == ["firing", "resolved", "firing"]
    transitions, t = replay("entropy_early_warning", resumed)
    assert transitions == [("firing", 101)] and t.values["clear_level"] == pytest.approx(1.8, abs=1e-3)
    # Climbing back part of the way (to 1.6) is not a recovery; back at 1.9, the hold (100 clear
    # steps) runs and the episode ends.
    assert replay("entropy_early_warning", stream([1.6] * 150))[0] == [("firing", 101)]
    transitions, _ = replay("entropy_early_warning", stream([1.9] * 150))
    assert [k for k, _ in transitions] == ["firing", "resolved"] and 410 < transitions[1][1] <= 430
    with pytest.raises(ValueError, match="clear_fraction must be above fraction"):
        _rule({"name": "ew", "detector": "entropy_early_warning", "params": {"clear_fraction": 0.2}})


def test_early_warning_stays_silent_on_noise_and_a_flat_entropy():
    stream = {"entropy/cov_logp_adv": wobble(300, 0.05, seed=3),
              "entropy/mean": [1.5 + w for w in wobble(300, 0.05, seed=5)]}
    assert replay("entropy_early_warning", stream)[0] == []


# --- sign imbalance, heavy tails, no signal, geometry ----------------------------------------

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
    # Logged every 5 steps: the two evaluations above 0.95 (for_steps 2) are at steps 10 and 15.
    rank1 = [0.7 if i < 10 else 0.97 if i % 5 == 0 else None for i in range(25)]
    rank1[0] = 0.7
    assert replay("geometry_collapse", {"geometry/rank1_frac": rank1})[0] == [("firing", 15)]
    assert replay("geometry_collapse", {"geometry/rank1_frac": [0.9] * 30})[0] == []


# --- diversity ------------------------------------------------------------------------------

def test_diversity_collapse_fires_on_distinct_share_or_pass_gap_falling_below_baseline():
    # Compared smoothed (an exponential mean over about 10 steps): the distinct share's mean falls
    # under 0.5 x 0.9 at step 16, the gap's under 0.3 x 0.2 at step 20; five tripping steps fire.
    distinct = [0.9] * 10 + [0.3] * 12
    transitions, t = replay("diversity_collapse", {"diversity/distinct_frac": distinct})
    assert transitions == [("firing", 20)] and t.values["tripped"] == ["diversity/distinct_frac"]
    gap = [0.2] * 10 + [0.04] * 16
    transitions, t = replay("diversity_collapse", {"diversity/pass_gap": gap})
    assert transitions == [("firing", 24)] and t.values["tripped"] == ["diversity/pass_gap"]


def test_diversity_collapse_is_quiet_while_the_run_learns_and_fires_when_coverage_goes():
    # pass@1 climbs from 0.3 to 0.95 while pass@G holds near 1: the gap and the distinct share
    # shrink because the run learns. The same shrinking with pass@G falling is a collapse.
    n = 200
    pass1 = ramp(0.3, 0.95, n)
    learning = {"pass@1": pass1, "diversity/pass_gap": [max(0.0, 0.98 - p) for p in pass1],
                "diversity/distinct_frac": ramp(0.8, 0.2, n)}
    assert replay("diversity_collapse", learning)[0] == []
    coverage = ramp(1.0, 0.5, n)
    collapsing = {"pass@1": [0.3] * n, "diversity/pass_gap": [c - 0.3 for c in coverage],
                  "diversity/distinct_frac": ramp(0.8, 0.2, n)}
    (kind, step), = replay("diversity_collapse", collapsing)[0]
    assert kind == "firing" and step < 150


def test_diversity_collapse_is_silent_on_a_mild_decline_and_ignores_a_gap_that_was_never_there():
    assert replay("diversity_collapse", {"diversity/distinct_frac": ramp(0.9, 0.55, 100)})[0] == []
    assert replay("diversity_collapse", {"diversity/pass_gap": [0.01] * 10 + [0.0] * 20})[0] == []


# --- non-finite and thresholds --------------------------------------------------------------

def test_nonfinite_fires_at_once_and_resolves_after_keep_firing_steps():
    adv = [0.1, math.nan] + [0.1] * 22
    transitions, t = replay("nonfinite", {"adv/mean": adv, "loss": [1.0] * 24})
    assert transitions == [("firing", 1), ("resolved", 22)] and t.severity == "critical"  # the 21st clear step
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


# --- episodes: hysteresis and hold ------------------------------------------------------------

def test_a_noisy_signal_about_its_threshold_makes_one_episode_and_two_messages():
    # loss wanders about 5 for 300 steps, then settles at 1. Trips above 5, clears under 4 (hysteresis),
    # and resolves after 10 clear steps in a row (the hold): one episode, one firing, one resolution.
    loss = [5 + w for w in wobble(300, 1.2, seed=2)] + [1.0] * 20
    spec = {"name": "loss", "metric": "loss", "condition": "> 5", "clear_value": 4, "keep_firing_steps": 10}
    transitions, _ = replay(spec, {"loss": loss})
    assert [k for k, _ in transitions] == ["firing", "resolved"] and transitions[1][1] == 310
    # Without hysteresis or hold the same signal flaps: an episode per crossing.
    flapping, _ = replay({"name": "loss", "metric": "loss", "condition": "> 5"}, {"loss": loss})
    assert len(flapping) > 50


# --- regimes: alarms only when their predicted consequence begins ---------------------------------

def _regime(t: Track) -> dict:
    """The regimes as GET /runs/{id}/regime reads them from the rule's memory."""
    from fadewatch.server.alerts.evaluation.regime import regime_view

    return regime_view(_rule("sign_imbalance").params, t.memory)


def _regime_stream(n: int, balance: float, rank1=None, entropy=None) -> dict[str, list]:
    out = {"sign/balance": [balance + w for w in wobble(n, 0.03)],
           "difficulty/solve_rate": [0.4] * n,
           "entropy/mean": entropy or [1.8 + w for w in wobble(n, 0.05, seed=3)]}
    if rank1 is not None:
        out["geometry/rank1_frac"] = [rank1(i) if i % 10 == 0 and i else None for i in range(n)]
    return out


def test_fade_like_failure_heavy_mass_raises_nothing_until_the_head_geometry_moves():
    # b = -0.54 (FADE at delta_min) with a steady rank-1 fraction: a regime, not an alarm.
    steady = _regime_stream(300, -0.54, rank1=lambda i: 0.72 + 0.02 * math.sin(i / 37))
    transitions, t = replay("sign_imbalance", steady)
    view = _regime(t)
    assert transitions == [] and view["sign"]["state"] == "failure-heavy" and "no alarm" in view["note"]
    # The same mass with the rank-1 fraction climbing, past 0.8 from the measurement at step 220: the
    # geometry warning, five tripping steps later.
    rising = _regime_stream(300, -0.54, rank1=lambda i: 0.62 + 0.3 * max(0.0, i - 100) / 200)
    (kind, step), = replay("sign_imbalance", rising)[0]
    assert kind == "firing" and step == 224
    assert replay("sign_imbalance", rising)[1].values["consequence"] == "head geometry concentrating"
    # Without head geometry: a note, never an alarm.
    transitions, t = replay("sign_imbalance", _regime_stream(300, -0.9))
    assert transitions == [] and "no head geometry" in _regime(t)["note"]


def test_success_heavy_mass_warns_only_once_entropy_heads_for_collapse():
    flat = _regime_stream(300, 0.9)
    transitions, t = replay("sign_imbalance", flat)
    assert transitions == [] and _regime(t)["sign"]["state"] == "success-heavy"
    falling = _regime_stream(300, 0.9, entropy=[2.0] * 20 + [2.0 - 0.008 * i for i in range(280)])
    (kind, step), = replay("sign_imbalance", falling)[0]
    t = replay("sign_imbalance", falling)[1]
    assert kind == "firing" and step < 200 - 20  # the level 0.6 is met at step 195
    assert t.values["points_to"] == "entropy collapse"


def test_regime_spans_record_each_change_once():
    b = [0.0] * 50 + [0.9] * 50 + [0.0] * 50
    _, t = replay("sign_imbalance", {"sign/balance": b, "difficulty/solve_rate": [0.1] * 150})
    spans = [(start, sign) for start, sign, _ in t.memory["sp"]]
    assert [sign for _, sign in spans] == ["balanced", "success-heavy", "balanced"]


# --- heavy tails: what pass/fail rewards give at the group size and solve rate -----------------------

def _batch_stream(steps: int, group: int, prompts: int, rate: float, estimator: str, outliers: bool) -> dict:
    """Scalars the hook computes for batches of pass/fail rewards (and, if asked, a reward outlier)."""
    import numpy as np

    from fadewatch import advantages
    from fadewatch.stats import compute

    rng = np.random.default_rng(7)
    ids = np.repeat(np.arange(prompts), group)
    columns: dict[str, list] = {}
    for _ in range(steps):
        rewards = (rng.random(group * prompts) < rate).astype(float)
        if outliers:
            rewards[rng.integers(rewards.size)] = 40.0
        st = compute(advantages=advantages.get(estimator)(rewards, ids), rewards=rewards, group_ids=ids)
        for k, v in st.scalars.items():
            columns.setdefault(k, []).append(v)
    return columns


def test_heavy_tails_stays_quiet_at_64_rollouts_a_prompt_with_few_solved_and_fires_on_reward_outliers():
    wide = _batch_stream(60, 64, 4, 0.04, "grpo", outliers=False)
    assert max(wide["adv/kurtosis"]) > 20, "fixed bounds alone would fire here"
    assert replay("heavy_tails", wide)[0] == []
    spiky = _batch_stream(30, 8, 16, 0.4, "dr_grpo", outliers=True)
    transitions, t = replay("heavy_tails", spiky)
    assert transitions == [("firing", 9)] and "adv/kurtosis" in t.values["tripped"]
