"""verl's and OpenRLHF's real training steps on the CPU for bench/integration_overhead.py.

They run the stand-in harnesses of the integration tests (tests/support/verl_stubs.py and
openrlhf_stubs.py: a tiny Llama samples on the CPU, the model workers are stand-ins), and
time what the hook does on the training thread at each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["openrlhf_training", "verl_training"]


class Stopwatch:
    """Wraps ``owner.name`` to add up the seconds spent in it."""

    def __init__(self, owner: Any, name: str):
        self.owner, self.name, self.seconds, self.calls = owner, name, 0.0, 0
        self.original = getattr(owner, name)
        watch = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return watch.original(*args, **kwargs)
            finally:
                watch.seconds += time.perf_counter() - start
                watch.calls += 1

        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.original)


def verl_training(name: str, steps: int, prompts: int, group: int, with_hook: bool) -> dict[str, float]:
    """verl's RayPPOTrainer.fit() for ``steps`` steps of ``prompts`` x ``group`` responses."""
    from omegaconf import open_dict

    from fadewatch.integrations import verl as hook
    from tests.support.tiny_policy import Policy
    from tests.support.verl_stubs import legacy_trainer, verl_config

    hook.setup()
    config = verl_config(name, "trainer.use_v1=false")
    with open_dict(config):
        config.trainer.total_training_steps = steps
        config.data.train_batch_size = config.actor_rollout_ref.actor.ppo_mini_batch_size = prompts
        config.actor_rollout_ref.rollout.n = group
        config.trainer.logger = ["fadewatch"] if with_hook else []
    trainer = legacy_trainer(config, Policy(), dataset_size=steps * prompts)
    in_hook = Stopwatch(hook.FadewatchBackend, "log")
    finish = Stopwatch(hook.FadewatchBackend, "finish")
    try:
        start = time.perf_counter()
        trainer.fit()
        total = time.perf_counter() - start
    finally:
        in_hook.restore()
        finish.restore()
    return {"step": (total - finish.seconds) / steps, "in_hook": in_hook.seconds / steps, "finish": finish.seconds}


def openrlhf_training(name: str, steps: int, prompts: int, group: int, with_hook: bool) -> dict[str, float]:
    """OpenRLHF's BasePPOTrainer.train_step for ``steps`` steps, as its PPOTrainer.fit() calls it."""
    import random

    from fadewatch.integrations import openrlhf as hook
    from tests.support.openrlhf_stubs import import_openrlhf, openrlhf_args, ppo_trainer, rollout_samples
    from tests.support.tiny_policy import Policy

    hook.setup()
    openrlhf = import_openrlhf()
    hook.WATCHER = hook.OpenRLHFWatcher()
    policy = Policy()
    trainer = ppo_trainer(openrlhf, openrlhf_args("bench", name, n=group, prompts=prompts), policy, max_steps=steps)
    hooks: list[Stopwatch] = []
    if with_hook:
        hooks = [Stopwatch(hook.WATCHER, "on_step"), Stopwatch(hook.WATCHER, "on_experiences")]
    else:  # the patched methods stay; what they call does nothing
        hook.WATCHER.on_step = hook.WATCHER.on_experiences = _nothing
    rng = random.Random(0)
    total, step = 0.0, 0
    for _ in range(steps):  # a step of fit(): the rollouts (sampled on the CPU), then train_step
        start = time.perf_counter()
        batch = rollout_samples(openrlhf, policy, [(rng.randrange(5), rng.randrange(5)) for _ in range(prompts)],
                                group)
        _, step = trainer.train_step(batch, step)
        total += time.perf_counter() - start
    spent = sum(h.seconds for h in hooks)
    run = hook.WATCHER.run
    finish = 0.0
    if run is not None:  # the last step finished the run inside on_step: time it apart
        finish = getattr(run, "_bench_finish", 0.0)
    return {"step": (total - finish) / steps, "in_hook": (spent - finish) / steps, "finish": finish}


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def time_finish(run_class: Any) -> Callable[[], None]:
    """Record on each run how long its finish() took (attribute ``_bench_finish``)."""
    original = run_class.finish

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            self._bench_finish = time.perf_counter() - start

    run_class.finish = finish
    return lambda: setattr(run_class, "finish", original)
