"""Demo-trainer streams of the detection corpus: `fadewatch.demo.Trainer` with other
estimators, learning rates, group and batch sizes and seeds than the demo's default, each
step reduced by the hook's own statistics (`fadewatch.stats.compute`) from the arguments
`fadewatch demo` passes to `run.log`, the output head's geometry included.
"""

from __future__ import annotations

import dataclasses

__all__ = ["demo_stream"]

HEAD_EVERY = 10  # as `fadewatch demo`


def demo_stream(steps: int, seed: int, *, estimator: str, lr: float = 2.0, group_size: int = 8,
                prompts: int = 16) -> list[dict]:
    """One demo-trainer run: [{step, scalars, nonfinite, rewards}]."""
    import torch

    from fadewatch.demo import DemoConfig, Trainer, warm_start
    from fadewatch.stats import HeadWatcher, compute

    torch.set_num_threads(1)
    # The supervised warm-up does not depend on what varies here: the default configuration's
    # (cached per seed) is loaded instead of training one per configuration.
    config = dataclasses.replace(DemoConfig(), lr=lr, group_size=group_size, prompts_per_step=prompts,
                                 warmup_steps=0)
    trainer = Trainer(estimator, seed=seed, config=config)
    trainer.policy.load_state_dict(warm_start(DemoConfig(), seed).state_dict())
    head = HeadWatcher(trainer.policy.head, every=HEAD_EVERY)
    rows: list[dict] = []
    for _ in range(steps):
        s = trainer.step()
        extra = {k: v for k, v in s.scalars.items() if k.startswith("fade/")}
        extra.update(loss=s.loss, kl=s.scalars["approx_kl"], clip_fraction=s.scalars["clip_fraction"], lr=lr)
        extra.update(head.maybe_measure(s.step) or {})
        st = compute(advantages=s.advantages, rewards=s.rewards, group_ids=s.group_ids, entropy=s.entropy,
                     mask=s.mask, logprobs=s.logprobs, completions=s.tokens, scalars=extra)
        rows.append({"step": s.step, "scalars": {k: v for k, v in st.scalars.items() if v is not None},
                     "nonfinite": st.nonfinite or None, "rewards": s.rewards.tolist()})
    return rows
