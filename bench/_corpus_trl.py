"""TRL streams of the detection corpus: a real GRPOTrainer on a tiny Llama built from a config,
with a word-level tokenizer built in code (tests/support/tiny_trl.py), watched by
`fadewatch.watch` in offline mode; the records the hook spooled are the stream.

The reward is binary (1 when the first word of the completion is the sum), so the solve rate
and the sign and difficulty axes mean what they mean on a real verifiable task.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["trl_stream", "sum_reward"]

HEAD_EVERY = 10


def sum_reward(completions: list[str], target: list[str], **_: Any) -> list[float]:
    """1 when the completion's first word is the right sum, else 0."""
    return [1.0 if (text.split() or [""])[0] == want else 0.0 for text, want in zip(completions, target)]


def _spooled(root: Path) -> list[dict]:
    rows = [json.loads(line) for path in sorted(root.rglob("*.jsonl")) if path.parent.name != "rejected"
            for line in path.read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if "step" in r), key=lambda r: r["step"])


def trl_stream(steps: int, seed: int, *, lr: float, scale_rewards: str = "group", beta: float = 0.0,
               generations: int = 8, prompts: int = 8, hidden: int = 32) -> list[dict]:
    """One watched TRL run: [{step, scalars, nonfinite, rewards}] for its optimizer steps."""
    import sys

    import numpy as np
    import torch
    from transformers import TrainerCallback

    import fadewatch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.tiny_trl import make_trainer

    torch.set_num_threads(1)
    rewards: dict[int, list[float]] = {}

    class KeepRewards(TrainerCallback):  # what rlwatch is fed: this step's rewards
        def on_step_end(self, args, state, control, **kwargs):
            logs = trainer._logs["rewards"].get("sum_reward")
            if logs:
                rewards[state.global_step] = np.asarray(list(logs)[-generations * prompts:], dtype=float).tolist()

    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            Path(tmp), max_steps=steps, reward_funcs=[sum_reward], dataset_size=256, seed=seed, hidden_size=hidden,
            learning_rate=lr, lr_scheduler_type="constant", scale_rewards=scale_rewards, beta=beta,
            per_device_train_batch_size=generations * prompts, num_generations=generations,
            max_completion_length=4, logging_steps=10**9)
        trainer.add_callback(KeepRewards())
        watcher = fadewatch.watch(trainer, project="corpus", name=f"trl-{seed}", mode="offline",
                                  dir=Path(tmp) / "fw")
        watcher.run.watch_head(trainer.model.lm_head, every=HEAD_EVERY)
        trainer.train()
        rows = _spooled(Path(tmp) / "fw")
    return [{"step": r["step"], "scalars": {k: v for k, v in r.get("scalars", {}).items() if v is not None},
             "nonfinite": r.get("nonfinite") or None, "rewards": rewards.get(r["step"], [])} for r in rows]
