"""One optimizer step's rollouts in a TRL GRPO/RLOO trainer, gathered for ``run.log``.

TRL scores a whole generation batch at once (rewards gathered from every process), then
shuffles it and splits it into micro-batches that several optimizer steps may reuse
(``num_iterations``, ``steps_per_generation``). Each rollout is tagged with its index in the
gathered generation batch, so that the micro-batches an optimizer step trained on can be put
back in generation order: then group ids are ``index // num_generations``, and rewards and
completion texts are looked up by index. Tensors stay on the trainer's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ROLLOUT_KEY", "StepBatch"]

# The key added to TRL's generation batch; it travels through TRL's shuffle and split.
ROLLOUT_KEY = "fadewatch_rollout"


@dataclass
class _Generation:
    offset: int          # index of its first rollout among all rollouts of this training
    size: int            # rollouts, all processes together
    rewards: Any         # [size] weighted total reward (NaN where no reward function scored)
    texts: list[str] | None
    prompts: list[str] | None = None


def _text(completion: Any) -> str:
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


class StepBatch:
    """Collects the rollouts of the current optimizer step on every process."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self._next_offset = 0
        self._generations: list[_Generation] = []
        self._rewards_per_func: Any = None
        self._micro: list[dict[str, Any]] = []

    # ---- generation (all processes, inside TRL's collective generation step) ---------------

    def on_rewards(self, rewards_per_func: Any) -> None:
        self._rewards_per_func = rewards_per_func

    def on_generation(self, output: dict[str, Any]) -> None:
        """Tag the generation batch's rollouts with their global index; keep rewards and texts."""
        import torch

        trainer, per_func = self.trainer, self._rewards_per_func
        self._rewards_per_func = None
        advantages = output["advantages"]
        local = advantages.shape[0]
        size = local * trainer.accelerator.num_processes
        start = self._next_offset + trainer.accelerator.process_index * local
        output[ROLLOUT_KEY] = torch.arange(start, start + local, device=advantages.device)
        rewards = None
        if per_func is not None and per_func.shape[0] == size:
            weights = trainer.reward_weights.to(per_func.device, per_func.dtype)
            rewards = (per_func * weights.unsqueeze(0)).nansum(dim=1)
            rewards[torch.isnan(per_func).all(dim=1)] = float("nan")
        texts = prompts = None
        logs = getattr(trainer, "_logs", {})
        logged = logs.get("completion")
        if logged is not None and len(logged) >= size:
            texts = [_text(c) for c in list(logged)[-size:]]
        logged = logs.get("prompt")  # the same rows, for the rollout inspector
        if texts is not None and logged is not None and len(logged) >= size:
            prompts = [_text(p) for p in list(logged)[-size:]]
        self._generations.append(_Generation(self._next_offset, size, rewards, texts, prompts))
        self._next_offset += size
        del self._generations[:-8]  # a step never reaches further back than a few generations

    # ---- micro-batches (all processes) -------------------------------------------------

    def on_micro_batch(self, inputs: dict[str, Any], logps: Any, entropies: Any) -> None:
        rows = inputs.get(ROLLOUT_KEY)
        if rows is None:
            return  # generated before watch(): its rollouts cannot be placed
        mask = inputs["completion_mask"]
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        self._micro.append({
            "rows": rows,
            "advantages": inputs["advantages"].detach(),
            "entropy": entropies.detach() if entropies is not None else None,
            "logprobs": logps.detach() if logps is not None else None,
            "mask": mask,
        })

    def take_step(self) -> dict[str, Any] | None:
        """This process's rollouts of the step, concatenated (tokens padded); None if none."""
        import torch
        from torch.nn.functional import pad

        micro, self._micro = self._micro, []
        if not micro:
            return None
        width = max(m["mask"].shape[1] for m in micro)

        def cat(key: str, fill: float = 0.0) -> Any:
            values = [m[key] for m in micro]
            if any(v is None for v in values):
                return None
            if values[0].ndim == 1:
                return torch.cat(values)
            return torch.cat([pad(v, (0, width - v.shape[1]), value=fill) for v in values])

        return {"rows": cat("rows"), "advantages": cat("advantages"), "entropy": cat("entropy"),
                "logprobs": cat("logprobs"), "mask": cat("mask")}

    # ---- the step's end ----------------------------------------------------------------

    def gather(self, local: dict[str, Any] | None) -> dict[str, Any] | None:
        """Every process's rollouts on every process (a collective: all processes call it)."""
        acc = self.trainer.accelerator
        if acc.num_processes == 1 or local is None:
            return local
        out = {}
        for key, value in local.items():
            if value is None:
                out[key] = None
                continue
            if value.ndim == 2:
                value = acc.pad_across_processes(value, dim=1)
            out[key] = acc.gather(value)
        return out

    def log_arguments(self, step: dict[str, Any]) -> dict[str, Any]:
        """``run.log`` keyword arguments, rollouts in generation order (main process)."""
        import torch

        order = torch.argsort(step["rows"])
        rows = step["rows"][order]
        host_rows = rows.cpu()
        out: dict[str, Any] = {
            "advantages": step["advantages"][order],
            "group_ids": (host_rows // int(self.trainer.num_generations)).numpy(),
        }
        for key in ("entropy", "logprobs", "mask"):
            if step[key] is not None:
                out[key] = step[key][order]
        rewards, texts, prompts = self._lookup(host_rows.tolist())
        if rewards is not None:
            out["rewards"] = rewards.to(rows.device) if rewards.device != rows.device else rewards
        if texts is not None:
            out["completions"] = texts
            if prompts is not None:
                out["prompts"] = prompts
        return out

    def _lookup(self, rows: list[int]) -> tuple[Any, list[str] | None, list[str] | None]:
        """Rewards, texts and prompts of these global rollout indices (ascending), from the generations kept."""
        import torch

        matched, rewards, texts, prompts = 0, [], [], []
        for gen in self._generations:  # ascending offsets, so the pieces come in the rows' order
            local = [r - gen.offset for r in rows if gen.offset <= r < gen.offset + gen.size]
            if not local:
                continue
            matched += len(local)
            if rewards is not None and gen.rewards is not None:
                rewards.append(gen.rewards[torch.tensor(local, device=gen.rewards.device)])
            else:
                rewards = None
            texts = texts + [gen.texts[i] for i in local] if texts is not None and gen.texts is not None else None
            prompts = (prompts + [gen.prompts[i] for i in local]
                       if prompts is not None and gen.prompts is not None else None)
        if matched != len(rows):
            return None, None, None
        return (torch.cat(rewards) if rewards else None), texts, prompts
