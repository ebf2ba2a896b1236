"""The bundled demo: a small RL post-training run on a digit-sum task, on the CPU.

Needs torch (the ``demo`` extra); ``import fadewatch`` never imports this package.
"""

from fadewatch.demo.policy import Policy, Rollout
from fadewatch.demo.task import DigitSumTask
from fadewatch.demo.trainer import DemoConfig, StepResult, Trainer, train, warm_start

__all__ = ["DemoConfig", "DigitSumTask", "Policy", "Rollout", "StepResult", "Trainer", "train", "warm_start"]
