"""What the TRL hook reads off the trainer itself: its config, its kind, and the metrics it
buffered since the previous optimizer step (trl.py logs them beside the FADE statistics)."""

from __future__ import annotations

import math
from typing import Any

from fadewatch.integrations.common import installed_version

__all__ = ["MetricsSince", "is_rloo", "trainer_config"]


def trainer_config(trainer: Any) -> dict[str, Any]:
    """The run's config: the trainer's arguments, model, reward functions and versions."""
    model_config = getattr(getattr(trainer, "model", None), "config", None)
    weights = getattr(trainer, "reward_weights", None)
    return {
        "trainer": type(trainer).__name__,
        "args": trainer.args.to_dict(),
        "model": {"name": getattr(model_config, "_name_or_path", None) or None,
                  "type": getattr(model_config, "model_type", None)},
        "reward_funcs": list(getattr(trainer, "reward_func_names", [])),
        "reward_weights": weights.tolist() if weights is not None else None,
        "num_processes": trainer.accelerator.num_processes,
        "versions": {d: installed_version(d) for d in ("trl", "transformers", "accelerate", "torch")},
    }


def is_rloo(trainer: Any) -> bool:
    """An RLOOTrainer (or a subclass): its rewards carry the KL penalty."""
    return any(c.__name__ == "RLOOTrainer" and c.__module__.startswith("trl.") for c in type(trainer).__mro__)


class MetricsSince:
    """TRL's own metrics (``trainer._metrics["train"]``) appended since the previous take()."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self._seen: dict[str, tuple[list, int]] = {}  # key -> (the list last seen, its length then)

    def take(self) -> dict[str, float]:
        """Each key's new values averaged as TRL does (NaN left out; NaN when all are)."""
        out = {}
        for key, values in list(self.trainer._metrics["train"].items()):
            seen, count = self._seen.get(key, (None, 0))
            start = count if seen is values else 0  # TRL's log() replaces the lists it clears
            self._seen[key] = (values, len(values))
            fresh = [float(v) for v in values[start:] if v is not None]
            if fresh:
                valid = [v for v in fresh if not math.isnan(v)]
                out[key] = sum(valid) / len(valid) if valid else math.nan
        return out
