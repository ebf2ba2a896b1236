"""What one process of a TRL GRPO/RLOO training trains on, captured where TRL computes it.

TRL scores a whole generation batch at once (rewards gathered from every process); then
each process shuffles its own part and splits it into micro-batches, which
``steps_per_generation`` micro-steps train on, ``num_iterations`` times over. Each rollout is
tagged with its index among all the rollouts of the training (a CPU tensor that travels
through TRL's shuffle and split), so every micro-batch says which rollouts, of which
generation, in which pass over it, it holds. Rollouts of one prompt are consecutive in a
generation, so a rollout's group is its index divided by ``num_generations``.

Reading the tag and the generation's rewards happens on the host: capturing a micro-batch
never waits for the device. Tensors stay where TRL put them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ROLLOUT_KEY", "Generation", "RolloutCapture", "completion_text"]

# The key added to TRL's generation batch; it travels through TRL's shuffle and split.
ROLLOUT_KEY = "fadewatch_rollout"
_KEEP_GENERATIONS = 16  # a pass still being trained never reaches further back than a few generations


@dataclass
class Generation:
    offset: int               # index of its first rollout among all rollouts of this training
    size: int                 # its rollouts, all processes together
    local_start: int          # index of this process's first rollout of it
    local_size: int
    rewards: Any              # [local_size] CPU float64: the rewards its advantages came from, or None
    texts: list[str] | None   # all ``size`` completion texts (kept by the main process only)
    prompts: list[str] | None  # their prompts, for the rollout inspector (main process only)
    seen: int = 0             # this process's rollouts trained on so far, all passes together


def completion_text(completion: Any) -> str:
    """A completion as text: conversational completions are lists of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = []
        for message in completion:
            content = message.get("content") if isinstance(message, dict) else message
            if isinstance(content, list):  # content blocks
                content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            parts.append(str(content))
        return "\n".join(parts)
    return str(completion)


class RolloutCapture:
    """This process's generations and the micro-batches trained since the last optimizer step.

    ``missing`` names the parts TRL did not hand over ("rewards", "entropy", ...), for the
    watcher's warning.
    """

    def __init__(self, trainer: Any, kl_in_reward: bool, keep_texts: bool):
        self.trainer = trainer
        self.kl_in_reward = kl_in_reward  # RLOO puts the KL penalty into the rewards
        self.keep_texts = keep_texts
        self.missing: set[str] = set()
        self.generations: list[Generation] = []
        self._next_offset = 0
        self._rewards_per_func: Any = None
        self._micro: list[dict[str, Any]] = []

    # ---- generation (every process, inside TRL's collective generation step) --------------

    def on_rewards(self, rewards_per_func: Any) -> None:
        self._rewards_per_func = rewards_per_func

    def on_generation(self, output: dict[str, Any], generation_logps: list[Any]) -> None:
        """Tag the generation batch's rollouts with their global index; keep rewards and texts.

        ``generation_logps``: the per-token log-probabilities TRL computed while generating,
        in order (RLOO: the policy's, then the reference model's when ``beta`` is not 0).
        """
        import torch

        trainer, per_func = self.trainer, self._rewards_per_func
        self._rewards_per_func = None
        local = output["advantages"].shape[0]
        size = local * trainer.accelerator.num_processes
        start = self._next_offset + trainer.accelerator.process_index * local
        output[ROLLOUT_KEY] = torch.arange(start, start + local)  # on the CPU: read without a device sync
        rewards = self._rewards(per_func, size, start - self._next_offset, local, output, generation_logps)
        texts = prompts = None
        if self.keep_texts:
            logs = getattr(trainer, "_logs", {})
            logged = logs.get("completion")
            if logged is not None and len(logged) >= size:
                texts = [completion_text(c) for c in list(logged)[-size:]]
            else:
                self.missing.add("completions")
            logged = logs.get("prompt")  # the same rows
            if texts is not None and logged is not None and len(logged) >= size:
                prompts = [completion_text(p) for p in list(logged)[-size:]]
        self.generations.append(Generation(self._next_offset, size, start, local, rewards, texts, prompts))
        self._next_offset += size
        del self.generations[:-_KEEP_GENERATIONS]

    def _rewards(self, per_func: Any, size: int, first: int, local: int, output: dict[str, Any],
                 generation_logps: list[Any]) -> Any:
        """The rewards of this process's rollouts as TRL computed its advantages from them."""
        import torch

        if per_func is None or per_func.shape[0] != size:
            self.missing.add("rewards")
            return None
        trainer = self.trainer
        weights = trainer.reward_weights.to(per_func.device, per_func.dtype)
        rewards = (per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(per_func).all(dim=1)] = float("nan")  # no reward function scored it
        rewards = rewards[first:first + local]
        if self.kl_in_reward:
            clip = getattr(trainer, "reward_clip_range", None)
            if clip:
                rewards = rewards.clamp(min=clip[0], max=clip[1])
            beta = float(getattr(trainer, "beta", 0.0) or 0.0)
            if beta:
                mask = output.get("completion_mask")
                if len(generation_logps) != 2 or mask is None or generation_logps[0].shape != mask.shape:
                    self.missing.add("rewards")  # the KL penalty cannot be put back: better none than wrong
                    return None
                policy, reference = generation_logps
                rewards = rewards - beta * ((policy - reference) * mask).sum(-1)
        # TRL itself has just read its rewards back for its logs: one small copy per generation
        return rewards.detach().to("cpu", torch.float64)

    # ---- micro-batches (every process) ---------------------------------------------------

    def on_micro_batch(self, inputs: dict[str, Any], logps: Any, entropies: Any) -> None:
        import torch

        rows = inputs.get(ROLLOUT_KEY)
        if rows is None:
            return  # generated before watch(): its rollouts cannot be placed
        advantages = inputs.get("advantages")
        if advantages is None:
            self.missing.add("advantages")
            return
        rows = rows.cpu()
        gen = self._generation(int(rows[0]))
        if gen is None:
            return
        passes = torch.full_like(rows, gen.seen // gen.local_size)
        gen.seen += len(rows)
        mask = inputs["completion_mask"]
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        rewards = gen.rewards[rows - gen.local_start] if gen.rewards is not None else None
        if entropies is None:
            self.missing.add("entropy")
        if logps is None:
            self.missing.add("logprobs")
        self._micro.append({
            "rows": rows, "passes": passes, "advantages": advantages.detach(), "rewards": rewards,
            "mask": mask, "entropy": entropies.detach() if entropies is not None else None,
            "logprobs": logps.detach() if logps is not None else None,
        })

    def _generation(self, row: int) -> Generation | None:
        for gen in reversed(self.generations):
            if gen.offset <= row < gen.offset + gen.size:
                return gen
        return None

    def generation_of(self, row: int) -> Generation | None:
        return self._generation(row)

    def take(self) -> dict[str, Any] | None:
        """This process's rollouts since the last call, concatenated (tokens padded); None if none."""
        micro, self._micro = self._micro, []
        return concat_chunks(micro) if micro else None


def concat_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Chunks of rollouts as one: rows in the given order, token fields padded to the widest."""
    import torch
    from torch.nn.functional import pad

    if len(chunks) == 1:
        return dict(chunks[0])
    widths = [c["mask"].shape[1] for c in chunks]
    width = max(widths)
    out: dict[str, Any] = {}
    for key in chunks[0]:
        values = [c.get(key) for c in chunks]
        if any(v is None for v in values):
            out[key] = None  # a part that some rollouts lack is left out for all of them
        elif all(v.ndim == 1 for v in values):
            out[key] = torch.cat(values)
        else:
            values = [v.unsqueeze(1).expand(-1, w) if v.ndim == 1 else v for v, w in zip(values, widths)]
            out[key] = torch.cat([pad(v, (0, width - v.shape[1])) for v in values])
    return out
