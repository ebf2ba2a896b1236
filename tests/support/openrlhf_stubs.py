"""OpenRLHF's real PPO step on the CPU, with stand-ins for its models and its GPU-only imports.

OpenRLHF cannot be installed whole on a machine without CUDA (its flash-attn dependency
builds against CUDA), so the dev install adds it with ``--no-deps``. Its trainer modules
import three GPU-only packages at the top (vllm, flash_attn, deepspeed) that the experience
maker and ``train_step`` never call: ``import_openrlhf()`` lends empty stand-ins for them
while OpenRLHF's modules are imported, then takes them back, so nothing else in the process
sees them.

The model groups are stand-ins too: the actor's and the reference model's log-probabilities
are functions of each token (tests.support.tiny_policy), ``fit`` returns metrics, and Ray's
object store is replaced, in those two modules only, by an in-process one (``put`` keeps a
value, ``get`` gives it back), since every group call returns an object reference.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from types import SimpleNamespace
from typing import Any

import torch

from tests.support.tiny_policy import Policy, token_logprob

__all__ = ["GPU_ONLY", "import_openrlhf", "openrlhf_args", "ppo_trainer", "rollout_samples"]

GPU_ONLY = ("vllm", "flash_attn", "deepspeed")


class _Anything(type):
    """A stand-in class whose every attribute is another stand-in (decorators, base classes...)."""

    def __getattr__(cls, name: str):
        return _Anything(name, (), {})

    def __call__(cls, *args: Any, **kwargs: Any):
        return cls


class _EmptyModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _Anything(name, (), {})
        setattr(self, name, value)
        return value


class _Lender(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in GPU_ONLY:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _EmptyModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


def import_openrlhf() -> SimpleNamespace:
    """OpenRLHF's experience maker, experience and trainer modules (see the module docstring)."""
    if "openrlhf.trainer.ppo_trainer" not in sys.modules:
        import peft  # noqa: F401 - imported for real before the stand-ins exist
        import transformers  # noqa: F401

        lender = _Lender()
        sys.meta_path.insert(0, lender)
        try:
            import openrlhf.trainer.ppo_trainer  # noqa: F401
            import openrlhf.trainer.ppo_utils.experience_maker  # noqa: F401
        finally:
            sys.meta_path.remove(lender)
            for name in [n for n in sys.modules if n.split(".")[0] in GPU_ONLY]:
                if isinstance(sys.modules[name], _EmptyModule):
                    del sys.modules[name]
    import openrlhf.trainer.ppo_trainer as trainer
    import openrlhf.trainer.ppo_utils as utils
    import openrlhf.trainer.ppo_utils.experience_maker as maker

    for module in (trainer, maker):
        module.ray = _ObjectStore
    return SimpleNamespace(trainer=trainer, maker=maker, utils=utils)


class _ObjectStore:
    """``ray.put`` / ``ray.get`` within one process."""

    class Ref:
        def __init__(self, value: Any):
            self.value = value

    @classmethod
    def put(cls, value: Any) -> Ref:
        return cls.Ref(value)

    @classmethod
    def get(cls, refs: Any) -> Any:
        return [r.value for r in refs] if isinstance(refs, list) else refs.value


class _Group:
    """A RayActorGroup of one actor: ``forward`` gives per-token log-probabilities of the
    following tokens, shifted by ``offset`` (the reference model differs from the policy)."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.appended: list[Any] = []

    def async_run_method_batch(self, method_name: str, **kwargs: Any) -> list:
        if method_name == "append":
            self.appended.extend(kwargs["experience"])
            return [_ObjectStore.put(None)]
        out = [token_logprob(seq[:, 1:]).float() + self.offset for seq in kwargs["sequences"]]
        return [_ObjectStore.put(out)]

    def async_run_method(self, method_name: str, **kwargs: Any) -> list:
        if method_name == "fit":
            return [_ObjectStore.put({"policy_loss": -0.25, "actor_lr": 1e-6, "kl": 0.01})]
        return [_ObjectStore.put(None)]


def openrlhf_args(project: str, name: str, *, estimator: str = "group_norm", n: int = 4, prompts: int = 2):
    """OpenRLHF's nested arguments for a GRPO-style run (group_norm advantages) of ``prompts`` prompts a step."""
    ns = SimpleNamespace
    return ns(
        algo=ns(advantage=ns(estimator=estimator, gamma=1.0, lambd=1.0, no_std_norm=False),
                kl=ns(use_loss=False, estimator="k1", init_coef=0.01, target=None, horizon=10000),
                dynamic_filtering_enable=False),
        rollout=ns(n_samples_per_prompt=n, micro_batch_size=n, batch_size=prompts, max_new_tokens=6),
        train=ns(dynamic_batch_enable=False, colocate_all=False, colocate_actor_ref=False,
                 colocate_critic_reward=False, batch_size=prompts * n),
        ds=ns(ring_attn_size=1, tensor_parallel_size=1, enable_sleep=False),
        reward=ns(clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None),
        critic=ns(freezing_steps=0), vllm=ns(enable_sleep=False), data=ns(max_len=64),
        logger=ns(wandb=ns(key=None, project=project, run_name=name), tensorboard_dir=None, logging_steps=1),
        ckpt=ns(best_metric_key="", save_steps=float("inf"), load_enable=False),
        eval=ns(steps=float("inf")),
    )


def ppo_trainer(openrlhf: SimpleNamespace, args: SimpleNamespace, policy: Policy, max_steps: int):
    """A BasePPOTrainer as OpenRLHF's PPOTrainer builds it, with the stand-in model groups."""
    strategy = SimpleNamespace(args=args)
    trainer = openrlhf.trainer.BasePPOTrainer(strategy, _Group(), None, None, _Group(offset=-0.05), None,
                                              policy.tokenizer)
    trainer.max_steps = max_steps
    return trainer


def rollout_samples(openrlhf: SimpleNamespace, policy: Policy, prompts: list[tuple[int, int]], n: int) -> list:
    """One Experience per sample, as OpenRLHF's SamplesGenerator returns them (n per prompt, in order)."""
    Experience = openrlhf.utils.Experience
    samples = []
    for a, b in prompts:
        for _ in range(n):
            prompt, response = policy.sample(f"add {a} + {b} =")
            sequence = torch.tensor(prompt + response)
            action_mask = torch.tensor([0] * len(prompt) + [1] * len(response))[1:]
            reward = policy.score(response, str(a + b)) + 1.0 / len(response)  # the rule, and shorter is better
            samples.append(Experience(
                sequences=sequence.unsqueeze(0), attention_mask=torch.ones(1, len(sequence), dtype=torch.long),
                action_mask=action_mask.unsqueeze(0), prompts=[f"add {a} + {b} ="], labels=[str(a + b)],
                rewards=torch.tensor([reward]), response_length=torch.tensor([len(response)]),
                truncated=torch.tensor([False]), total_length=torch.tensor([float(len(sequence))]),
                info={"reward": torch.tensor([reward]), "response_clip_ratio": torch.tensor([False])}))
    return samples
