"""The demo's RL post-training loop: group sampling, an advantage estimator from
``fadewatch.advantages``, and a PPO-style clipped policy-gradient update.

    from fadewatch.demo import train
    history = train("psr", steps=150, seed=0, on_step=lambda s: run.log(s.step, ...))

Everything runs on the CPU and is deterministic for a given seed and config.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fadewatch import advantages
from fadewatch.demo.policy import Policy, Rollout
from fadewatch.demo.task import DigitSumTask
from fadewatch.errors import UsageError

__all__ = ["DemoConfig", "StepResult", "train", "warm_start"]


@dataclass(frozen=True)
class DemoConfig:
    """Every knob of the demo, with the defaults the demo is tuned for."""

    task: DigitSumTask = field(default_factory=DigitSumTask)
    prompts_per_step: int = 16  # B
    group_size: int = 8  # G
    lr: float = 2e-3
    adam_eps: float = 1e-8
    inner_updates: int = 2  # gradient steps on each batch (PPO epochs)
    clip_eps: float = 0.2
    max_grad_norm: float = 1.0
    embed: int = 32
    hidden: int = 96
    # Supervised warm-up on random digit strings labelled with their (sometimes wrong) sum:
    # the policy starts out solving some prompts, with high entropy.
    warmup_steps: int = 150
    warmup_batch: int = 256
    warmup_lr: float = 3e-3
    warmup_label_noise: float = 0.5
    # Keyword parameters per estimator name, e.g. {"fade": {"target_entropy": 1.0}}.
    estimator_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()


@dataclass
class StepResult:
    """One training step: what the trainer hands to ``on_step`` (tensors on the CPU)."""

    step: int
    estimator: str
    advantages: torch.Tensor  # [N]
    rewards: torch.Tensor  # [N]
    group_ids: torch.Tensor  # long [N], one id per prompt
    entropy: torch.Tensor  # [N, T] full-distribution entropy per sampled token
    logprobs: torch.Tensor  # [N, T] log-prob of each sampled token at sampling time
    mask: torch.Tensor  # bool [N, T]
    completions: list[str]  # [N] digit strings
    prompts: list[str]  # [N] the prompt each rollout answers
    loss: float
    scalars: dict[str, float]  # success_rate, entropy, clip_fraction, ...; alpha/delta for fade
    policy: Policy  # the live policy (read it, e.g. policy.head.weight; don't modify it)


def _new_policy(config: DemoConfig, seed: int) -> Policy:
    # Seed the initialisation without disturbing the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Policy(len(config.task.vocab), embed=config.embed, hidden=config.hidden)


@functools.lru_cache(maxsize=8)
def _warm_state(config: DemoConfig, seed: int) -> dict[str, torch.Tensor]:
    task = config.task
    policy = _new_policy(config, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(policy.parameters(), lr=config.warmup_lr)
    lengths = torch.tensor(task.lengths)
    for _ in range(config.warmup_steps):
        n = config.warmup_batch
        length = lengths[torch.randint(len(task.lengths), (n,), generator=gen)]
        mask = task.mask(length)
        digits = torch.randint(10, (n, task.max_length), generator=gen) * mask
        target = digits.sum(dim=1)
        noisy = torch.rand(n, generator=gen) < config.warmup_label_noise
        shift = torch.randint(1, 3, (n,), generator=gen) * (torch.randint(2, (n,), generator=gen) * 2 - 1)
        target = torch.where(noisy, target + shift, target).clamp(min=torch.zeros_like(length), max=9 * length)
        logits = policy.logits(task.encode(length, target), digits)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), digits, reduction="none")
        loss = (nll * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def warm_start(config: DemoConfig | None = None, seed: int = 0) -> Policy:
    """The policy after the supervised warm-up (cached per config and seed)."""
    config = config or DemoConfig()
    policy = _new_policy(config, seed)
    policy.load_state_dict(copy.deepcopy(_warm_state(config, seed)))
    return policy


def _estimator(name: str, config: DemoConfig) -> Callable[..., Any]:
    params = dict(dict(config.estimator_params).get(name, ()))
    return advantages.get(name, **params)


def _update(policy: Policy, opt: torch.optim.Optimizer, prompt: torch.Tensor, roll: Rollout,
            adv: torch.Tensor, config: DemoConfig) -> tuple[float, float, float]:
    mask = roll.mask.float()
    n_tok = mask.sum()
    a = adv[:, None]
    loss_v = clip_v = kl_v = 0.0
    for _ in range(config.inner_updates):
        logp, _ = policy.score(prompt, roll.tokens)
        log_ratio = logp - roll.logprobs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - config.clip_eps, 1 + config.clip_eps)
        surrogate = torch.minimum(ratio * a, clipped * a)
        loss = -(surrogate * mask).sum() / n_tok
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        opt.step()
        with torch.no_grad():
            loss_v = float(loss)
            clip_v = float((((ratio - 1).abs() > config.clip_eps).float() * mask).sum() / n_tok)
            kl_v = float((((ratio - 1) - log_ratio) * mask).sum() / n_tok)
    return loss_v, clip_v, kl_v


def train(
    estimator: str = "fade",
    steps: int = 150,
    seed: int = 0,
    on_step: Callable[[StepResult], None] | None = None,
    config: DemoConfig | None = None,
) -> list[StepResult]:
    """Train the warm-started policy with one advantage estimator; returns every step."""
    config = config or DemoConfig()
    if estimator not in advantages.ESTIMATORS:
        raise UsageError(
            f"unknown estimator {estimator!r}; choose one of {', '.join(sorted(advantages.ESTIMATORS))}"
        )
    if steps < 0:
        raise UsageError(f"steps must be >= 0, got {steps}")
    task = config.task
    policy = warm_start(config, seed)
    opt = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    est = _estimator(estimator, config)
    gen = torch.Generator().manual_seed(seed + 2)
    B, G = config.prompts_per_step, config.group_size
    group_ids = torch.arange(B).repeat_interleave(G)
    history: list[StepResult] = []
    for step in range(steps):
        length, target = task.sample(B, gen)
        length, target = length[group_ids], target[group_ids]
        prompt = task.encode(length, target)
        roll = policy.sample(prompt, task.mask(length), gen)
        rewards = task.reward(target, roll.tokens, roll.mask)
        mean_entropy = float(roll.entropy.sum() / roll.mask.sum())
        scalars: dict[str, float] = {}
        if isinstance(est, advantages.FadeAdvantage):
            adv = est(rewards, group_ids, entropy=mean_entropy)
            scalars.update(est.state())
        else:
            adv = est(rewards, group_ids)
        loss, clip_frac, kl = _update(policy, opt, prompt, roll, adv, config)
        scalars.update(
            success_rate=float(rewards.mean()),
            entropy=mean_entropy,
            clip_fraction=clip_frac,
            approx_kl=kl,
        )
        result = StepResult(
            step=step,
            estimator=estimator,
            advantages=adv,
            rewards=rewards,
            group_ids=group_ids + step * B,
            entropy=roll.entropy,
            logprobs=roll.logprobs,
            mask=roll.mask,
            completions=task.completion_texts(roll.tokens, length),
            prompts=[task.prompt_text(n, t) for n, t in zip(length.tolist(), target.tolist())],
            loss=loss,
            scalars=scalars,
            policy=policy,
        )
        history.append(result)
        if on_step is not None:
            on_step(result)
    return history
