"""Rollout groups as the hook sends them, with values the tests can predict."""

from __future__ import annotations

__all__ = ["rollout_group", "rollout_record", "GSM_PROMPTS"]

GSM_PROMPTS = ["What is 7 + 5?", "Name a prime above 90.", "Sort 3, 1, 2.", "How many legs has a spider?"]


def rollout_group(key: str, prompt: str | None, advantages: list[float], rewards: list[float] | None = None,
                  texts: list[str] | None = None, lengths: list[int] | None = None, solve_rate: float | None = None,
                  **extra) -> dict:
    """One group: completion i has advantage advantages[i] and (by default) the text "<key> answer i"."""
    n = len(advantages)
    rewards = rewards if rewards is not None else [1.0 if a > 0 else 0.0 for a in advantages]
    texts = texts or [f"{key} answer {i}" for i in range(n)]
    lengths = lengths or [10 * (i + 1) for i in range(n)]
    if solve_rate is None:
        solve_rate = sum(r >= 0.5 for r in rewards) / n
    return {"group": key, "prompt": prompt, "solve_rate": solve_rate, **extra, "completions": [
        {"text": texts[i], "reward": rewards[i], "advantage": advantages[i], "length": lengths[i],
         "entropy": 0.5 + i / 10} for i in range(n)]}


def rollout_record(step: int, groups: list[dict]) -> dict:
    return {"step": step, "scalars": {"reward/mean": 0.5}, "rollouts": groups}
