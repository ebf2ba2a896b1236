"""The diagnosis card every alert carries (Slack, webhook, the dashboard's alert detail).

    regime      the run's sign and difficulty regimes, as the sign rule holds them (one line)
    tripped     the numbers that tripped the rule
    forecast    where entropy is heading, as the early-warning rule reads it
    action      what to try, from what the sign and difficulty axes say (the FADE paper's reading:
                success-heavy mass collapses entropy, failure-heavy mass the head's geometry)
    sign, difficulty   the axes' values at the step, each with a reading

Built when an alert fires or resolves, from the states the engine holds for the run then.
"""

from __future__ import annotations

from typing import Any

from fadewatch.server.alerts.evaluation.detector_base import fmt

__all__ = ["diagnosis_card", "regime_line", "forecast_line", "suggest"]

_ENTROPY = ("entropy_collapse", "entropy_early_warning", "diversity_collapse")


def regime_line(regime: dict | None) -> str:
    if not regime:
        return "no regime yet (the sign rule has not seen advantages and rewards)"
    sign, diff = regime.get("sign") or {}, regime.get("difficulty") or {}
    parts = []
    if sign.get("state"):
        parts.append(f"sign {sign['state']} (b = {sign['balance']:+.2f}) since step {sign.get('since_step')}")
    if diff.get("state"):
        parts.append(f"difficulty {diff['state']} (solve rate {diff['solve_rate']:.2f}) since step "
                     f"{diff.get('since_step')}")
    if regime.get("consequence"):
        parts.append(f"under way: {regime['consequence']}")
    elif regime.get("note"):
        parts.append(regime["note"])
    return "; ".join(parts) or "no regime yet"


def forecast_line(f: dict | None) -> str:
    if not f or f.get("collapse_level") is None:
        return "no entropy forecast yet (it needs the baseline and a window of entropy values)"
    level = fmt(f["collapse_level"])
    if f.get("entropy_fit") is None:
        return f"entropy {fmt(f.get('entropy'))}; collapse level {level}; the forecast needs a longer window"
    now = fmt(f["entropy_fit"])
    step, projected = f["step"], f.get("projected_step")
    if projected is not None and projected <= step:
        return f"entropy {now} is at the collapse level {level}"
    if projected is None:
        return f"entropy {now} is not heading for the collapse level {level} (slope {fmt(f.get('slope'))} a step)"
    late = f["late_step"] if f.get("late_step") is not None else "later"
    return (f"entropy {now} reaches the collapse level {level} in about {projected - step} steps (step {projected}; "
            f"interval {f.get('early_step')} to {late})")


def suggest(detector: str, values: dict, regime: dict | None) -> str | None:
    sign = ((regime or {}).get("sign") or {}).get("state")
    if detector in _ENTROPY or (detector == "sign_imbalance" and values.get("regime") == "success-heavy"):
        if sign == "success-heavy":
            return ("positive advantage mass dominates: lower the weight of successes (W-REINFORCE with lambda < 1), "
                    "or switch to a balanced (GRPO, RLOO) or FADE advantage, whose failure weighting props entropy up")
        if sign == "failure-heavy":
            return ("failure suppression is on and entropy still falls: lower the learning rate, or make FADE "
                    "suppress sooner and harder (raise the entropy target H*, lower delta_min)")
        return ("entropy falls under balanced mass: raise the entropy target (FADE's H*, so delta drops below 1 "
                "sooner) or switch to FADE; a lower learning rate or an entropy bonus slows the fall")
    if detector in ("sign_imbalance", "geometry_collapse"):
        return ("failure-heavy mass concentrates the head's update into one direction: give successes more weight "
                "(raise W-REINFORCE's lambda, FADE's delta_min toward 1) or use a balanced advantage; lower the "
                "learning rate")
    if detector == "heavy_tails":
        return ("a few rollouts carry the update: check the reward function for outliers, clip or rescale rewards, "
                "normalise per group (TRL scale_rewards='group'), or use larger groups")
    if detector == "no_signal":
        return ("most groups fail every rollout, so they teach nothing: add easier prompts (a curriculum), sample "
                "more rollouts per prompt, or filter prompts no rollout solves")
    if detector == "nonfinite":
        return ("NaN or Inf: look for a zero group std or reward scale and a loss spike; lower the learning rate; "
                "resume from the last good checkpoint")
    # A rule of the user's own: what the regime the run is in calls for, if anything.
    if sign == "success-heavy":
        return suggest("entropy_early_warning", {}, regime)
    if sign == "failure-heavy":
        return suggest("geometry_collapse", {}, regime)
    return None


def _tripped(values: dict) -> str:
    """The numbers among the values (the words are in the summary and the regime line)."""
    skip = {"window", "bound", "since_step", "horizon"}
    parts = [f"{k} {fmt(v)}" for k, v in values.items()
             if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(parts[:12])


def diagnosis_card(axes: dict[str, Any], *, detector: str, values: dict | None, regime: dict | None,
                   forecast: dict | None) -> dict[str, Any]:
    """The card: `axes` is messages.diagnose() at the step (sign and difficulty with their readings)."""
    values = values or {}
    card = dict(axes)
    card.update(regime=regime_line(regime), tripped=_tripped(values), forecast=forecast_line(forecast),
                action=suggest(detector, values, regime))
    if regime:
        card["regime_state"] = {"sign": (regime.get("sign") or {}).get("state"),
                                "difficulty": (regime.get("difficulty") or {}).get("state"),
                                "consequence": regime.get("consequence")}
    if forecast and forecast.get("collapse_level") is not None:
        card["forecast_values"] = {k: forecast.get(k) for k in ("step", "entropy_fit", "slope", "collapse_level",
                                                                "projected_step", "early_step", "late_step")}
    return card
