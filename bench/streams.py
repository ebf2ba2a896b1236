"""Synthetic but realistic step records of a GRPO-style run, for benchmarks and screenshots.

The shapes follow what the hook reports on real runs (docs/metrics.md): entropy decays
towards a floor, reward climbs and saturates, the sign balance drifts success-heavy, the
difficulty profile moves towards easier prompts, advantages tighten. Every scalar and both
histograms (`advantages`, `entropy`) carry per-step noise, so charts look like training.

    from streams import RunShape, records      # bench/ is on sys.path for bench scripts
    for batch in records(RunShape(steps=100_000), batch_size=1000): post(batch)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["RunShape", "records", "step_record"]

ADV_EDGES = (-4.0, 4.0, 80)
ENT_EDGES = (0.0, 8.0, 64)
DIFF_LABELS = ["0", "(0,0.1]", "(0.1,0.2]", "(0.2,0.3]", "(0.3,0.4]", "(0.4,0.5]", "(0.5,0.6]",
               "(0.6,0.7]", "(0.7,0.8]", "(0.8,0.9]", "(0.9,1)", "1"]
DIFF_EDGES = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
WORDS = "the answer is so we add carry digits sum then total equals check step".split()


@dataclass(frozen=True)
class RunShape:
    """How a synthetic run evolves; `collapse` makes entropy fall hard late in the run."""

    steps: int = 1000
    seed: int = 0
    rollouts: int = 128           # N per step
    group_size: int = 8           # G
    entropy_start: float = 2.1
    entropy_floor: float = 0.35   # fraction of the start it decays to
    reward_start: float = 0.18
    reward_end: float = 0.72
    balance_drift: float = 0.55   # how far b moves success-heavy by the end
    collapse: bool = False
    difficulty_histograms: bool = False  # also the three difficulty histograms (5 in all)
    samples: int = 2
    # Above 0: each step also carries the rollouts the hook keeps of a synthetic batch of
    # math problems within this many bytes (bench/_rollout_batches.py), instead of samples.
    rollout_bytes: int = 0
    rollout_prompts: int = 32


def _noise(rng: np.random.Generator, scale: float) -> float:
    return float(rng.normal(0.0, scale))


def _uniform_counts(rng, n: int, lo: float, hi: float, bins: int, cdf) -> tuple[list[float], float, float]:
    """Multinomial counts of n draws with the given CDF on uniform bins; (counts, under, over)."""
    edges = np.linspace(lo, hi, bins + 1)
    cum = np.clip(np.array([cdf(e) for e in edges]), 0.0, 1.0)
    probs = np.diff(np.concatenate([[0.0], cum, [1.0]]))
    probs = np.clip(probs, 0.0, None)
    drawn = rng.multinomial(n, probs / probs.sum())
    return drawn[1:-1].astype(float).tolist(), float(drawn[0]), float(drawn[-1])


def _normal_cdf(mu: float, sigma: float):
    return lambda x: 0.5 * (1.0 + math.erf((x - mu) / (sigma * math.sqrt(2.0))))


def _gamma_like_cdf(mean: float, spread: float):
    # A log-normal stands in for the right-skewed token entropy distribution.
    s = spread
    mu = math.log(max(mean, 1e-3)) - s * s / 2
    return lambda x: 0.0 if x <= 0 else 0.5 * (1.0 + math.erf((math.log(x) - mu) / (s * math.sqrt(2.0))))


def _histogram(counts, under, over, edges, total_sum, quantiles) -> dict:
    lo, hi, bins = edges
    return {"lo": lo, "hi": hi, "bins": bins, "counts": counts, "underflow": under, "overflow": over,
            "count": sum(counts) + under + over, "sum": total_sum, "quantiles": quantiles}


def _difficulty(rng, solve: float, m_pos: float, m_neg: float) -> tuple[dict, dict, dict]:
    centres = np.array([0.0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0])
    weights = np.exp(-((centres - solve) ** 2) / 0.08) + 0.02
    groups = rng.multinomial(16, weights / weights.sum()).astype(float)
    signal = groups * centres * (1 - centres)
    share = signal / signal.sum() if signal.sum() > 0 else signal
    pos = (share * m_pos).round(5).tolist()
    neg = (share * m_neg).round(5).tolist()

    def h(counts):
        return {"edges": DIFF_EDGES, "labels": DIFF_LABELS, "counts": counts, "count": float(sum(counts))}

    return h(pos), h(neg), h(groups.tolist())


def step_record(shape: RunShape, step: int, rng: np.random.Generator) -> dict:
    x = step / max(shape.steps - 1, 1)
    ent0 = shape.entropy_start
    floor = shape.entropy_floor * (0.5 if shape.collapse else 1.0)
    decay = 3.0 if not shape.collapse else 3.0 + 6.0 * max(0.0, x - 0.6)
    entropy = ent0 * (floor + (1 - floor) * math.exp(-decay * x)) * (1 + _noise(rng, 0.03))
    reward = shape.reward_start + (shape.reward_end - shape.reward_start) * (1 - math.exp(-4 * x))
    reward = float(np.clip(reward + _noise(rng, 0.03), 0.0, 1.0))
    balance = float(np.clip(0.05 + shape.balance_drift * x ** 1.5 + _noise(rng, 0.05), -1, 1))
    mass = 0.32 * (1 - 0.4 * x) * (1 + _noise(rng, 0.04))
    m_pos, m_neg = mass * (1 + balance) / 2, mass * (1 - balance) / 2
    adv_std = 0.95 - 0.25 * x + _noise(rng, 0.02)
    kurt = 0.4 + 1.6 * x + abs(_noise(rng, 0.4))
    no_signal = float(np.clip(0.12 + 0.45 * x ** 2 + _noise(rng, 0.04), 0, 1))
    distinct = float(np.clip(0.97 - 0.45 * x + _noise(rng, 0.02), 0, 1))
    pass1 = reward
    passes = {f"pass@{k}": float(np.clip(1 - (1 - pass1) ** (k * (0.9 - 0.5 * x)), pass1, 1))
              for k in (1, 2, 4, 8)}
    passes["pass@1"] = pass1
    length = 180 + 140 * x + _noise(rng, 8)
    scalars = {
        "reward/mean": reward, "reward/std": 0.42 - 0.1 * x + _noise(rng, 0.01),
        "reward/min": 0.0, "reward/max": 1.0, "reward/success_rate": reward,
        "adv/mean": m_pos - m_neg, "adv/std": adv_std, "adv/min": -2.2 - x + _noise(rng, 0.2),
        "adv/max": 2.3 + 0.6 * x + _noise(rng, 0.2), "adv/max_abs_over_std": 2.6 + 1.2 * x + abs(_noise(rng, 0.3)),
        "adv/kurtosis": kurt, "adv/frac_zero": no_signal * 0.9,
        "sign/m_pos": m_pos, "sign/m_neg": m_neg, "sign/balance": balance,
        "sign/n_pos": 50.0, "sign/n_neg": 60.0, "sign/n_zero": 18.0,
        "difficulty/n_groups": 16.0, "difficulty/solve_rate": reward,
        "difficulty/no_signal_frac": no_signal,
        "difficulty/peak": float(np.clip(0.3 + 0.35 * x + _noise(rng, 0.03), 0, 1)),
        "difficulty/ess_frac": float(np.clip(0.78 - 0.3 * x + _noise(rng, 0.02), 0, 1)),
        "entropy/mean": entropy, "entropy/seq_p10": entropy * 0.62, "entropy/seq_p50": entropy * 0.97,
        "entropy/seq_p90": entropy * 1.38,
        "entropy/cov_logp_adv": 0.004 + 0.02 * balance + _noise(rng, 0.004),
        "diversity/distinct_frac": distinct, "diversity/distinct_1": distinct * 0.6,
        "diversity/distinct_2": distinct * 0.82, "diversity/pairwise_jaccard": 1 - distinct * 0.85,
        "diversity/pass_gap": passes["pass@8"] - pass1, **passes,
        "length/mean": length, "length/min": length * 0.35, "length/max": min(1024.0, length * 2.4),
        "loss": 0.02 * _noise(rng, 1.0), "kl": 0.002 + 0.03 * x + abs(_noise(rng, 0.002)),
        "lr": 1e-6 * min(1.0, step / 200),
    }
    if step % 100 == 0:
        scalars["geometry/head_delta_norm"] = 0.4 * math.sqrt(step + 1) / 30
        scalars["geometry/rank1_frac"] = float(np.clip(0.62 + 0.3 * x + _noise(rng, 0.02), 0, 1))
    adv_counts, adv_under, adv_over = _uniform_counts(rng, shape.rollouts, *ADV_EDGES,
                                                       _normal_cdf(m_pos - m_neg, adv_std))
    tokens = int(shape.rollouts * length / 16)
    ent_counts, ent_under, ent_over = _uniform_counts(rng, tokens, *ENT_EDGES, _gamma_like_cdf(entropy, 0.7))
    histograms = {
        "advantages": _histogram(adv_counts, adv_under, adv_over, ADV_EDGES, (m_pos - m_neg) * shape.rollouts, {
            "0.05": -1.64 * adv_std, "0.25": -0.67 * adv_std, "0.5": m_pos - m_neg,
            "0.75": 0.67 * adv_std, "0.95": 1.64 * adv_std}),
        "entropy": _histogram(ent_counts, ent_under, ent_over, ENT_EDGES, entropy * tokens, {}),
    }
    if shape.difficulty_histograms:
        pos, neg, groups = _difficulty(rng, reward, m_pos, m_neg)
        histograms.update({"difficulty/mass_pos": pos, "difficulty/mass_neg": neg, "difficulty/groups": groups})
    samples = [{"text": " ".join(rng.choice(WORDS, size=12)) + f" = {int(rng.integers(10, 99))}",
                "group": f"g{int(rng.integers(0, 16))}", "reward": float(rng.integers(0, 2)),
                "advantage": round(_noise(rng, adv_std), 4)} for _ in range(shape.samples)]
    record = {"step": step, "time": None, "scalars": {k: round(v, 6) for k, v in scalars.items()},
              "histograms": histograms, "samples": samples or None}
    if shape.rollout_bytes:
        from _rollout_batches import batch, hook_rollouts

        data = batch(step, prompts=shape.rollout_prompts, g=shape.group_size, seed=shape.seed)
        record["rollouts"], record["samples"] = hook_rollouts(data, shape.rollout_bytes, step), None
    return record


def records(shape: RunShape, batch_size: int = 1000, start: int = 0, stop: int | None = None) -> Iterator[list[dict]]:
    """Batches of step records for steps [start, stop)."""
    rng = np.random.default_rng(shape.seed + start)
    batch: list[dict] = []
    for step in range(start, shape.steps if stop is None else stop):
        batch.append(step_record(shape, step, rng))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
