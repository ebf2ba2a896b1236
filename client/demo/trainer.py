"""The demo's RL post-training loop: group sampling, an advantage estimator from
``fadewatch.advantages``, and a PPO-style clipped policy-gradient update.

    from fadewatch.demo import Trainer, train
    trainer = Trainer("psr", seed=0)
    result = trainer.step()                 # one step; or all at once:
    history = train("psr", steps=300, seed=0, on_step=lambda s: ...)

Everything runs on the CPU and is deterministic for a given seed and config: each
trainer owns its generators, so trainers can be interleaved in one process.
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

__all__ = ["DemoConfig", "StepResult", "Trainer", "train", "warm_start"]


@dataclass(frozen=True)
class DemoConfig:
    """Every knob of the demo, with the defaults the demo is tuned for (docs/demo.md)."""

    task: DigitSumTask = field(default_factory=DigitSumTask)
    prompts_per_step: int = 16  # B
    group_size: int = 8  # G
    # Plain SGD on a gradient clipped to norm max_grad_norm: each update moves the weights by
    # at most lr * max_grad_norm = 0.2, whatever the advantages' scale. Adam is not used on
    # purpose: in a policy this small its per-weight normalisation turns gradient noise into
    # a random walk of every weight, which lowers entropy whatever the advantages' sign and
    # hides the sign effects the demo is about.
    lr: float = 2.0
    max_grad_norm: float = 0.1
    inner_updates: int = 2  # gradient steps on each batch (PPO epochs)
    clip_eps: float = 0.2
    embed: int = 32
    hidden: int = 96
    # Supervised warm-up on random digit strings labelled with their sum, a share of them
    # off by 1 or 2: the policy starts out solving some prompts, with high entropy.
    warmup_steps: int = 400
    warmup_batch: int = 256
    warmup_lr: float = 3e-3
    warmup_label_noise: float = 0.2
    # Keyword parameters per estimator name. FADE's EMAs follow the batch faster than the
    # paper's 0.02, because the demo runs hundreds of steps, not tens of thousands; its
    # entropy target sits at 0.8 of this policy's starting entropy (about 1.8 nats), since
    # δ only starts to act once the entropy has fallen under the target.
    estimator_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("fade", (("ema_weight", 0.2), ("target_entropy", 1.4))),
    )


@dataclass
class StepResult:
    """One training step: what the trainer hands to ``on_step`` (tensors on the CPU)."""

    step: int
    estimator: str
    advantages: torch.Tensor  # [N]
    rewards: torch.Tensor  # [N]
    group_ids: torch.Tensor  # long [N], one id per prompt of the step
    entropy: torch.Tensor  # [N, T] full-distribution entropy per sampled token
    logprobs: torch.Tensor  # [N, T] log-prob of each sampled token at sampling time
    mask: torch.Tensor  # bool [N, T]
    tokens: torch.Tensor  # long [N, T] the sampled digits (0 outside the mask)
    completions: list[str]  # [N] the same digits as strings
    prompts: list[str]  # [N] the prompt each rollout answers
    loss: float
    # entropy, success_rate (pass@1), pass_at_G, clip_fraction, approx_kl (KL(old || new) after
    # the last inner update); for fade also fade/alpha, fade/delta, fade/solve_rate_ema, fade/entropy_ema
    scalars: dict[str, float]
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


class Trainer:
    """One policy trained with one advantage estimator, a step at a time."""

    def __init__(self, estimator: str = "fade", seed: int = 0, config: DemoConfig | None = None):
        if estimator not in advantages.ESTIMATORS:
            raise UsageError(
                f"unknown estimator {estimator!r}; choose one of {', '.join(sorted(advantages.ESTIMATORS))}"
            )
        self.config = config = config or DemoConfig()
        self.estimator = estimator
        self.policy = warm_start(config, seed)
        self.optimizer = torch.optim.SGD(self.policy.parameters(), lr=config.lr)
        self._advantage = _estimator(estimator, config)
        self._gen = torch.Generator().manual_seed(seed + 2)
        B, G = config.prompts_per_step, config.group_size
        self._group_ids = torch.arange(B).repeat_interleave(G)
        self.steps_done = 0

    def step(self) -> StepResult:
        """Sample a batch of groups, score it, and update the policy once (inner_updates steps)."""
        config, task, group_ids = self.config, self.config.task, self._group_ids
        length, target = task.sample(config.prompts_per_step, self._gen)
        length, target = length[group_ids], target[group_ids]
        prompt = task.encode(length, target)
        roll = self.policy.sample(prompt, task.mask(length), self._gen)
        rewards = task.reward(target, roll.tokens, roll.mask)
        mean_entropy = float(roll.entropy.sum() / roll.mask.sum())
        scalars: dict[str, float] = {}
        if isinstance(self._advantage, advantages.FadeAdvantage):
            adv = self._advantage(rewards, group_ids, entropy=mean_entropy)
            scalars.update({f"fade/{k}": v for k, v in self._advantage.state().items()})
        else:
            adv = self._advantage(rewards, group_ids)
        loss, clip_frac, kl = self._update(prompt, roll, adv)
        solved = rewards.view(-1, config.group_size).amax(dim=1) > 0
        scalars.update(entropy=mean_entropy, success_rate=float(rewards.mean()),
                       pass_at_G=float(solved.float().mean()), clip_fraction=clip_frac, approx_kl=kl)
        result = StepResult(
            step=self.steps_done, estimator=self.estimator, advantages=adv, rewards=rewards,
            group_ids=group_ids, entropy=roll.entropy, logprobs=roll.logprobs, mask=roll.mask,
            tokens=roll.tokens, completions=task.completion_texts(roll.tokens, length),
            prompts=[task.prompt_text(n, t) for n, t in zip(length.tolist(), target.tolist())],
            loss=loss, scalars=scalars, policy=self.policy,
        )
        self.steps_done += 1
        return result

    def _update(self, prompt: torch.Tensor, roll: Rollout, adv: torch.Tensor) -> tuple[float, float, float]:
        config, opt = self.config, self.optimizer
        mask = roll.mask.float()
        n_tok = mask.sum()
        a = adv[:, None]
        loss_v = clip_v = kl_v = 0.0
        for _ in range(config.inner_updates):
            logp, _ = self.policy.score(prompt, roll.tokens)
            log_ratio = logp - roll.logprobs
            ratio = log_ratio.exp()
            clipped = ratio.clamp(1 - config.clip_eps, 1 + config.clip_eps)
            loss = -(torch.minimum(ratio * a, clipped * a) * mask).sum() / n_tok
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.max_grad_norm)
            opt.step()
            with torch.no_grad():
                loss_v = float(loss)
                clip_v = float((((ratio - 1).abs() > config.clip_eps).float() * mask).sum() / n_tok)
                kl_v = float((((ratio - 1) - log_ratio) * mask).sum() / n_tok)
        return loss_v, clip_v, kl_v


def train(
    estimator: str = "fade",
    steps: int = 300,
    seed: int = 0,
    on_step: Callable[[StepResult], None] | None = None,
    config: DemoConfig | None = None,
) -> list[StepResult]:
    """Train the warm-started policy with one advantage estimator; returns every step."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise UsageError(f"steps must be an int >= 0, got {steps!r}")
    trainer = Trainer(estimator, seed, config)
    history: list[StepResult] = []
    for _ in range(steps):
        result = trainer.step()
        history.append(result)
        if on_step is not None:
            on_step(result)
    return history
