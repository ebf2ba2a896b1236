"""Synthetic GRPO batches with math prompts and step-by-step completions, and the hook's own
choice of their rollouts (fadewatch.rollouts), for benchmarks and screenshots.

Completion lengths are log-normal (median about 900 characters, a long tail past 8,000),
so the per-step budget has to cut some of them, as on real runs.
"""

from __future__ import annotations

import numpy as np

from fadewatch.rollouts import RolloutConfig
from fadewatch.rollouts.build import finalize_rollouts
from fadewatch.rollouts.choice import reduce_rollouts
from fadewatch.rollouts.inputs import RolloutPlan
from fadewatch.stats import StatsConfig, prepare
from fadewatch.stats.backend import NumpyOps
from fadewatch.stats.groups import group_structure

__all__ = ["batch", "hook_rollouts"]

NAMES = ["Ava", "Ben", "Chloé", "Dmitri", "Emeka", "Farah", "Guo", "Hana"]
ITEMS = ["apples", "marbles", "stamps", "books", "coins", "shells"]
FILLER = ["First, write down what we know.", "Let me double-check the arithmetic.",
          "So the running total changes here.", "Careful: the question asks for what is left.",
          "We can verify by adding back.", "Wait, that does not look right; recompute.",
          "Hmm, let me reconsider the second step.", "This matches the constraint in the problem."]


def _problem(rng: np.random.Generator) -> tuple[str, int]:
    who, what = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = (int(x) for x in rng.integers(3, 60, 3))
    text = (f"{who} has {a} {what} and buys {b} more, then gives {min(c, a + b)} to a friend. "
            f"How many {what} does {who} have now? Put the final answer in \\boxed{{}}.")
    return text, a + b - min(c, a + b)


def _completion(rng: np.random.Generator, answer: int, correct: bool) -> str:
    given = answer if correct else answer + int(rng.choice([-10, -2, -1, 1, 3, 7]))
    steps = max(1, int(rng.lognormal(3.0, 0.9)))
    body = " ".join(FILLER[i] for i in rng.integers(0, len(FILLER), steps))
    return f"Let's think step by step.\n{body}\nSo the answer is \\boxed{{{given}}}."


def batch(step: int, prompts: int = 64, g: int = 8, seed: int = 0) -> dict:
    """One step's batch: prompts x g rollouts, binary rewards, GRPO advantages."""
    rng = np.random.default_rng([seed, step])
    problems = [_problem(rng) for _ in range(prompts)]
    solve = rng.beta(1.2, 1.2, prompts)
    rewards = (rng.random((prompts, g)) < solve[:, None]).astype(np.float64)
    std = rewards.std(1, keepdims=True)
    adv = ((rewards - rewards.mean(1, keepdims=True)) / np.where(std > 0, std, 1.0)).reshape(-1)
    texts = [_completion(rng, problems[i // g][1], bool(rewards.reshape(-1)[i])) for i in range(prompts * g)]
    return dict(advantages=adv, rewards=rewards.reshape(-1), group_ids=np.repeat(np.arange(prompts), g),
                completions=texts, prompts=[p for p, _ in problems])


def hook_rollouts(data: dict, budget: int, step: int, config: RolloutConfig | None = None) -> list[dict]:
    """The groups the hook keeps of `data` within `budget` bytes (its choice and fill, without the statistics)."""
    config = config or RolloutConfig()
    inp = prepare(**data, config=StatsConfig(), rollouts=RolloutPlan(config, budget, step))
    B, raw, meta = NumpyOps(), {}, {}
    adv = B.asarray(inp.advantages, B.f64)
    r = B.asarray(inp.rewards, B.f64)
    reduce_rollouts(B, inp, group_structure(inp), adv, r, None, raw, meta)
    return finalize_rollouts(raw, meta)
