"""verl's real trainers on the CPU, with stand-ins for what needs GPUs and a rollout engine.

``RayPPOTrainer.fit()`` and the V1 ``PPOTrainer.fit()`` run unchanged; what ``init_workers()``
/ ``init()`` would build on GPUs is replaced:

- the rollout: the tiny policy of tests.support.tiny_policy samples the responses with
  ``generate()`` on the CPU and a rule scores them, as verl's agent loop would return them
  (legacy) or put them into TransferQueue (V1);
- the actor worker group: log-probabilities and entropies are a fixed function of each
  token (tiny_policy.token_entropy), so a test can tell from a response which entropy row is its;
  the update returns metrics only; weight syncs do nothing.

Nothing is downloaded; the configuration is verl's own, composed with hydra.
"""

from __future__ import annotations

import functools
import os
import random

import numpy as np
import torch
from torch.utils.data import Dataset

from tests.support.tiny_policy import PROMPT_LEN, RESPONSE_LEN, Policy, token_entropy, token_logprob

__all__ = ["Prompts", "legacy_trainer", "v1_trainer", "verl_config"]

def verl_config(name: str, *overrides: str):
    """verl's ppo_trainer configuration for a CPU run of 2 steps named ``name``, with ``overrides``."""
    import copy

    from omegaconf import open_dict

    config = copy.deepcopy(_composed(overrides))
    with open_dict(config):
        config.trainer.experiment_name = name
    return config


@functools.lru_cache(maxsize=None)
def _composed(overrides: tuple[str, ...]):
    import verl
    from hydra import compose, initialize_config_dir

    base = [
        "trainer.logger=[fadewatch]", "trainer.project_name=verl", "trainer.device=cpu",
        "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.save_freq=-1",
        "trainer.resume_mode=disable", "trainer.total_training_steps=2", "trainer.total_epochs=1",
        "algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=4", "data.train_batch_size=2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2", f"data.max_prompt_length={PROMPT_LEN}",
        f"data.max_response_length={RESPONSE_LEN}", "data.dataloader_num_workers=0",
    ]
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[*base, *overrides])


class Prompts(Dataset):
    """Items as verl's RLHFDataset makes them: "add 3 + 4 =" chat prompts and their answers."""

    def __init__(self, n: int, seed: int = 0):
        rng = random.Random(seed)
        self.items = [(a, b) for a, b in ((rng.randrange(5), rng.randrange(5)) for _ in range(n))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        a, b = self.items[index]
        return {"raw_prompt": [{"role": "user", "content": f"add {a} + {b} ="}], "dummy_tensor": torch.tensor([0]),
                "data_source": "digits", "reward_model": {"ground_truth": str(a + b)}, "extra_info": {},
                "index": index, "tools_kwargs": {}, "interaction_kwargs": {}}


def _padded(prompt: list[int], response: list[int], pad: int) -> dict[str, torch.Tensor]:
    """One rollout laid out as verl's agent loop pads it: prompt on the left, response on the right."""
    p, r = len(prompt), len(response)
    prompts = torch.tensor([pad] * (PROMPT_LEN - p) + prompt)
    responses = torch.tensor(response + [pad] * (RESPONSE_LEN - r))
    attention = torch.tensor([0] * (PROMPT_LEN - p) + [1] * (p + r) + [0] * (RESPONSE_LEN - r))
    return {"prompts": prompts, "responses": responses, "response_mask": attention[PROMPT_LEN:].clone(),
            "input_ids": torch.cat([prompts, responses]), "attention_mask": attention,
            "position_ids": (attention.cumsum(0) - 1).clamp(min=0)}


def _score_tensor(response_len: int, score: float) -> torch.Tensor:
    scores = torch.zeros(RESPONSE_LEN)
    scores[response_len - 1] = score
    return scores


def _per_token(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in model output over a nested batch of sequences: position j scores token j + 1."""
    entropy, logprob = [], []
    for row in input_ids.unbind():
        following = torch.cat([row[1:], row[:1]])
        entropy.append(token_entropy(following).float())
        logprob.append(token_logprob(following).float())
    nested = lambda xs: torch.nested.as_nested_tensor(xs, layout=torch.jagged)  # noqa: E731
    return nested(entropy), nested(logprob)


class _Weights:
    """Weight syncs and rollout-engine switches: nothing to do on one CPU."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: {}


# ---- legacy RayPPOTrainer -------------------------------------------------------------------

class _LegacyRollout:
    def __init__(self, policy: Policy):
        self.policy = policy

    def generate_sequences(self, batch):
        from verl import DataProto

        rows, scores = [], []
        for messages, reward_model in zip(batch.non_tensor_batch["raw_prompt"], batch.non_tensor_batch["reward_model"]):
            prompt, response = self.policy.sample(messages[-1]["content"])
            rows.append(_padded(prompt, response, self.policy.tokenizer.pad_token_id))
            scores.append(_score_tensor(len(response), self.policy.score(response, reward_model["ground_truth"])))
        tensors = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        tensors["rm_scores"] = torch.stack(scores)
        n = len(rows)
        return DataProto.from_dict(tensors=tensors, non_tensors={
            "__num_turns__": np.full(n, 2, dtype=np.int32), "multi_modal_inputs": np.array([{}] * n, dtype=object)},
            meta_info={"timing": {}, "reward_extra_keys": []})


class _LegacyActor:
    """The actor worker group of two data-parallel ranks (so verl's balancing reorders the batch)."""

    def __init__(self):
        self._dispatch_info = {"actor": [0, 1]}

    def compute_log_prob(self, data):
        from tensordict import TensorDict

        from verl.utils import tensordict_utils as tu

        entropy, logprob = _per_token(data["input_ids"])
        out = TensorDict({"entropy": entropy, "log_probs": logprob}, batch_size=len(entropy))
        tu.assign_non_tensor(out, metrics={"mfu": 0.0})
        return out

    def update_actor(self, data):
        from tensordict import TensorDict

        from verl.utils import tensordict_utils as tu

        out = TensorDict({}, batch_size=[])
        tu.assign_non_tensor(out, metrics={"mfu": 0.0, "pg_loss": -0.25, "grad_norm": 1.5})
        return out


def legacy_trainer(config, policy: Policy, dataset_size: int = 8):
    """A RayPPOTrainer as init_workers() would leave it, with the stand-ins above."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.utils import Role

    pools = type("Pools", (), {"get_n_gpus": lambda self: 1})()
    trainer = RayPPOTrainer(config, policy.tokenizer, {Role.ActorRollout: object}, pools,
                            train_dataset=Prompts(dataset_size), val_dataset=Prompts(2, seed=1), device_name="cpu")
    trainer.actor_rollout_wg = _LegacyActor()
    trainer.async_rollout_manager = _LegacyRollout(policy)
    trainer.checkpoint_manager = _Weights()
    return trainer


# ---- V1 PPOTrainer (TransferQueue) --------------------------------------------------------------

class _V1Rollout:
    """The agent loop manager: each prompt's ``n`` sessions go into TransferQueue, finished."""

    def __init__(self, policy: Policy, n: int):
        self.policy, self.n = policy, n

    def generate_sequences(self, batch) -> None:
        import transfer_queue as tq

        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        steps = int(batch["global_steps"]) if "global_steps" in batch.keys() else 0
        for i in range(len(batch)):
            uid, messages = batch["uid"][i], batch["raw_prompt"][i]
            answer = batch["reward_model"][i]["ground_truth"]
            keys, fields, tags = [], [], []
            for session in range(self.n):
                prompt, response = self.policy.sample(messages[-1]["content"])
                score = self.policy.score(response, answer)
                ids = torch.tensor(prompt + response)
                keys.append(f"{uid}_{session}_0")
                fields.append({
                    "prompts": torch.tensor(prompt), "responses": torch.tensor(response),
                    "response_mask": torch.ones(len(response), dtype=torch.int64), "input_ids": ids,
                    "attention_mask": torch.ones_like(ids), "position_ids": torch.arange(len(ids)),
                    "rm_scores": _score_tensor(len(response), score)[:len(response)], "uid": uid, "num_turns": 2,
                    "rollout_log_probs": token_logprob(torch.tensor(response)).float()})
                tags.append({"status": "success", "prompt_len": len(prompt), "response_len": len(response),
                             "seq_len": len(ids), "global_steps": steps, "min_global_steps": steps,
                             "max_global_steps": steps})
            tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
            tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


class _V1Actor(_Weights):
    """The actor worker group reading and writing TransferQueue, as the engine workers do."""

    def __init__(self):
        self._dispatch_info = {"actor": [0, 1]}

    def compute_log_prob(self, batch):
        import transfer_queue as tq
        from tensordict import TensorDict

        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["input_ids"])
        entropy, logprob = _per_token(data["input_ids"])
        tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                        fields=TensorDict({"entropy": entropy, "log_probs": logprob}, batch_size=len(batch)))
        return batch

    def update_actor(self, batch):
        return {"metrics": {"mfu": 0.0, "pg_loss": -0.25, "grad_norm": 1.5}}


def v1_trainer(config, policy: Policy, dataset_size: int = 8):
    """A V1 PPOTrainer of ``trainer.v1.trainer_mode`` as init() would leave it; returns
    (trainer, agent loop manager) for ``trainer.fit(manager)``. TransferQueue must be up."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.utils.dataset.rl_dataset import collate_fn

    trainer = get_trainer_cls(config.trainer.v1.trainer_mode)(config=config)
    trainer.tokenizer, trainer.processor = policy.tokenizer, None
    gen_batch_size = config.data.get("gen_batch_size", None) or config.data.train_batch_size
    trainer.train_dataset = Prompts(dataset_size)
    trainer.train_dataloader = StatefulDataLoader(trainer.train_dataset, batch_size=gen_batch_size, drop_last=True,
                                                  collate_fn=collate_fn, shuffle=False)
    trainer.train_dataloader_it = None
    trainer.steps_per_epoch = dataset_size // config.data.train_batch_size
    trainer.total_training_steps = config.trainer.total_training_steps
    trainer.global_steps = 0
    trainer.actor_rollout_wg = _V1Actor()
    trainer.reward_loop_manager = type("Rewards", (), {"reward_loop_worker_handles": []})()
    trainer.checkpoint_manager = trainer.standalone_checkpoint_manager = _Weights()
    trainer.resource_pool_manager = type("Pools", (), {"get_n_gpus": lambda self: 1})()
    trainer.current_mode = None  # the separate-async trainer's rollout/trainer switch: always training
    trainer._init_dump_executor()
    return trainer, _V1Rollout(policy, config.actor_rollout_ref.rollout.n)
