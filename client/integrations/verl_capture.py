"""What the verl trainer process computes each step, caught where verl computes it.

verl's driver loop (``RayPPOTrainer.fit`` in ``verl.trainer.ppo.ray_trainer``, and the V1
``PPOTrainer.fit`` in ``verl.trainer.ppo.v1.trainer_base``) calls, once per step and in this
order: ``agg_loss`` on the per-token entropy of the old-policy pass (the only call of
``agg_loss`` in either module; verl drops the entropy right after), the advantage function
(``compute_advantage`` / ``compute_advantage_for_multi_trajectories``), then
``Tracking.log(metrics, step)``. Those module globals are wrapped; the tensors are kept by
reference until the step is logged.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["CAPTURE", "Capture", "patch_trainer_module"]


class Capture:
    """The current step's tensors in this process (verl runs one trainer per driver process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entropy: Any = None
        self.entropy_mask: Any = None
        self.data: Any = None          # the DataProto the advantage function returned
        self.tokenizer: Any = None     # the trainer's: the hook decodes the rollouts it keeps with it
        self.failure: BaseException | None = None

    def on_entropy(self, loss_mat: Any, loss_mask: Any) -> None:
        with self._lock:
            self.entropy, self.entropy_mask = loss_mat.detach(), loss_mask

    def on_advantages(self, data: Any) -> None:
        with self._lock:
            self.data = data

    def take(self) -> dict[str, Any] | None:
        """``run.log`` arguments for the step just computed, or None (a validation-only log)."""
        with self._lock:
            data, entropy, mask = self.data, self.entropy, self.entropy_mask
            self.data = self.entropy = self.entropy_mask = None
        if data is None:
            return None
        batch = data.batch
        keys = set(batch.keys())
        response_mask = batch["response_mask"]
        out: dict[str, Any] = {"advantages": batch["advantages"], "mask": response_mask}
        # the task's reward (before any KL penalty), as verl's critic/score metrics use it
        for name in ("token_level_scores", "token_level_rewards"):
            if name in keys:
                out["rewards"] = batch[name].sum(dim=-1)
                break
        uid = data.non_tensor_batch.get("uid")
        if uid is not None:
            out["group_ids"] = [str(u) for u in uid]
        if "old_log_probs" in keys:
            out["logprobs"] = batch["old_log_probs"]
        # the entropy belongs to the same rows unless something resampled the batch in between
        if entropy is not None and tuple(entropy.shape) == tuple(response_mask.shape):
            out["entropy"] = entropy
        if "responses" in keys and tuple(batch["responses"].shape) == tuple(response_mask.shape):
            # Token ids and the tokenizer: only the rollouts the hook keeps are decoded, off this thread.
            out["completions"] = batch["responses"]
            if "prompts" in keys and batch["prompts"].shape[0] == response_mask.shape[0]:
                out["prompts"] = batch["prompts"]  # left padding is a special token: skipped when decoded
            if self.tokenizer is not None:
                out["tokenizer"] = self.tokenizer
        return out


CAPTURE = Capture()


def _wrap_agg_loss(original):
    @functools.wraps(original)
    def agg_loss(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        loss_mat = kwargs.get("loss_mat", args[0] if args else None)
        loss_mask = kwargs.get("loss_mask", args[1] if len(args) > 1 else None)
        if loss_mat is not None and loss_mask is not None:
            CAPTURE.on_entropy(loss_mat, loss_mask)
        return out

    agg_loss.__fadewatch__ = True
    return agg_loss


def _wrap_advantage(original):
    @functools.wraps(original)
    def advantage(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        CAPTURE.on_advantages(out)
        return out

    advantage.__fadewatch__ = True
    return advantage


def _wrap_fit(original, on_failure):
    @functools.wraps(original)
    def fit(self, *args: Any, **kwargs: Any) -> Any:
        CAPTURE.tokenizer = getattr(self, "tokenizer", None)
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            CAPTURE.failure = exc
            on_failure(exc)
            raise

    fit.__fadewatch__ = True
    return fit


# module -> (advantage function's global name, trainer class name)
TRAINER_MODULES = {
    "verl.trainer.ppo.ray_trainer": ("compute_advantage", "RayPPOTrainer"),
    "verl.trainer.ppo.v1.trainer_base": ("compute_advantage_for_multi_trajectories", "PPOTrainer"),
}


def patch_trainer_module(module: Any, on_failure) -> None:
    """Wrap agg_loss, the advantage function and ``fit`` of one verl trainer module (once)."""
    advantage_name, trainer_name = TRAINER_MODULES[module.__name__]
    if not getattr(module.agg_loss, "__fadewatch__", False):
        module.agg_loss = _wrap_agg_loss(module.agg_loss)
    original = getattr(module, advantage_name)
    if not getattr(original, "__fadewatch__", False):
        setattr(module, advantage_name, _wrap_advantage(original))
    trainer = getattr(module, trainer_name)
    if not getattr(trainer.fit, "__fadewatch__", False):
        trainer.fit = _wrap_fit(trainer.fit, on_failure)
