"""Synthetic streams of the detection corpus: what the small models cannot show.

Each step is built from arrays (binary rewards drawn from per-prompt solve rates, an
estimator's advantages, token entropies and log-probabilities, completions) and reduced by
the hook's own statistics, so its scalars are what the hook would send for such a batch.
Scenario curves (solve rate, entropy, the log-prob/advantage coupling, answer diversity,
the head's rank-1 fraction, sign weights) say what happens over the run; `truth` records the
step a problem the curves build in begins, for problems that no outcome label can read
(heavy-tailed advantages).
"""

from __future__ import annotations

import math

__all__ = ["SCENARIOS", "synthetic_stream"]


def _smooth(a: float, b: float, t: float, t0: float, width: float) -> float:
    """a before t0, b after, a logistic step of the given width between."""
    return a + (b - a) / (1 + math.exp(-(t - t0) / max(width, 1e-9)))


def _curves(kind: str, t: int, seed: int) -> dict:
    """Per-step targets of a scenario."""
    shift = 40 * seed  # seeds move the scenario's events a little
    c = {"p": 0.4, "H": 1.8, "cov": 0.0, "distinct": 0.8, "rank1": 0.7, "estimator": "grpo", "G": 8, "B": 16,
         "neg_weight": 1.0, "outlier": False, "nan": False}
    if kind == "heavy_tails":  # a reward model that now and then scores one rollout far off the scale
        c.update(estimator="dr_grpo", outlier=t >= 200 + shift)
    elif kind == "nonfinite":
        c.update(nan=t >= 300 + shift)
    elif kind == "geometry_collapse":  # failure-heavy mass concentrating the head's update
        c.update(estimator="nsr", rank1=_smooth(0.62, 0.985, t, 300 + shift, 35), p=0.3)
    elif kind == "fade_failure_heavy":  # FADE's failure-heavy phase at delta_min; geometry steady
        c.update(estimator="fade_like", neg_weight=_smooth(1.0, 1 / 0.3, t, 120 + shift, 20),
                 H=_smooth(1.8, 1.25, t, 80, 30), rank1=0.72 + 0.04 * math.sin(t / 37))
    elif kind == "wide_groups":  # G = 64, few prompts solved: Bernoulli tails, not heavy tails
        c.update(G=64, B=4, p=0.04 + 0.03 * math.sin(t / 50 + seed), H=1.7)
    elif kind == "learning":  # pass@1 climbs toward 1; the pass@G - pass@1 gap closes by learning
        p = _smooth(0.25, 0.97, t, 220 + shift, 60)
        c.update(p=p, distinct=_smooth(0.8, 0.45, t, 260 + shift, 60), H=_smooth(1.8, 1.2, t, 250 + shift, 80))
    elif kind == "level_off":  # entropy falls fast and levels off at 0.35-0.6 of its start
        floor = (0.36, 0.5)[seed % 2]
        c.update(H=1.8 * (floor + (1 - floor) * math.exp(-t / (60 + 30 * seed))), cov=0.02)
    elif kind == "slow_collapse":  # a steady slide of entropy to under 0.3 of its start
        c.update(H=1.8 * max(0.12, 1 - t / (500 + 60 * seed)), cov=0.03, distinct=_smooth(0.8, 0.3, t, 420, 60))
    return c


SCENARIOS = ("heavy_tails", "nonfinite", "geometry_collapse", "fade_failure_heavy", "wide_groups", "learning",
             "level_off", "slow_collapse")


def _truth(kind: str, seed: int) -> dict:
    return {"heavy_tails": 200 + 40 * seed} if kind == "heavy_tails" else {}


def synthetic_stream(steps: int, seed: int, *, kind: str) -> tuple[list[dict], dict]:
    """(rows, truth) of one synthetic run."""
    import numpy as np

    from fadewatch import advantages
    from fadewatch.stats import compute

    rng = np.random.default_rng(1000 * SCENARIOS.index(kind) + seed)
    rows = []
    for t in range(steps):
        c = _curves(kind, t, seed)
        G, B = c["G"], c["B"]
        n, T = G * B, 4
        group_ids = np.repeat(np.arange(B), G)
        p_prompt = np.clip(c["p"] + rng.normal(0, 0.2, B) * math.sqrt(c["p"] * (1 - c["p"])) * 2, 0.0, 1.0)
        rewards = (rng.random(n) < p_prompt[group_ids]).astype(float)
        if c["outlier"] and rng.random() < 0.5:
            rewards[rng.integers(n)] = float(rng.choice([25.0, -25.0, 60.0]))
        if c["estimator"] == "fade_like":  # balanced advantages, failures divided by delta
            adv = advantages.dr_grpo(rewards, group_ids)
            adv = np.where(adv < 0, adv * c["neg_weight"], adv)
        else:
            adv = advantages.get(c["estimator"])(rewards, group_ids)
        if c["nan"] and rng.random() < 0.7:
            adv[rng.integers(n)] = np.nan
        entropy = rng.gamma(4.0, c["H"] / 4.0, (n, T))
        noise = rng.normal(0, 0.3, (n, T))
        logprobs = np.minimum(-entropy * 0.8 + c["cov"] * 10 * np.nan_to_num(adv)[:, None] + noise, -1e-3)
        answers = max(1, round(c["distinct"] * G))
        pick = rng.integers(0, answers, n)
        completions = (group_ids[:, None] * 97 + pick[:, None] * 13 + np.arange(T)[None, :]) % 10
        extra = {"loss": float("nan") if c["nan"] and t % 3 == 0 else float(rng.normal(0.1, 0.02))}
        if t % 10 == 0 and t > 0:
            extra["geometry/rank1_frac"] = float(np.clip(c["rank1"] + rng.normal(0, 0.015), 0, 1))
        st = compute(advantages=adv, rewards=rewards, group_ids=group_ids, entropy=entropy,
                     mask=np.ones((n, T), bool), logprobs=logprobs, completions=completions, scalars=extra)
        rows.append({"step": t, "scalars": {k: v for k, v in st.scalars.items() if v is not None},
                     "nonfinite": st.nonfinite or None, "rewards": np.nan_to_num(rewards).tolist()})
    return rows, _truth(kind, seed)
