"""What the verl trainer process computes each step, caught where verl computes it.

verl's driver loop (``RayPPOTrainer.fit`` in ``verl.trainer.ppo.ray_trainer``, and the V1
``PPOTrainer.fit`` in ``verl.trainer.ppo.v1.trainer_base``) calls, for each pass over a
batch and in this order: ``agg_loss`` on the per-token entropy of the old-policy pass (the
only call of ``agg_loss`` in either module; verl drops the entropy right after), then the
advantage function (``compute_advantage`` / ``compute_advantage_for_multi_trajectories``).
A step has one pass, except in the V1 trainer with ``parameter_sync_step > 1`` (the
``separate_async`` mode), where it has one per mini-batch. ``Tracking.log(metrics, step)``
ends the step. Those module globals are wrapped; the tensors of every pass are kept by
reference until the step is logged, and only while a fadewatch backend is live.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["CAPTURE", "Capture", "TRAINER_MODULES", "patch_trainer_module"]


class Capture:
    """The current step's passes in this process (verl runs one trainer per driver process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live = 0                   # fadewatch backends that will take the passes
        self._entropy: Any = None        # (entropy, mask) of the pass under way
        self._passes: list[tuple[Any, Any]] = []  # (DataProto the advantage function returned, (entropy, mask))
        self._depth = threading.local()  # the V1 advantage function calls the legacy one: keep the outer
        self.tokenizer: Any = None       # the trainer's, to turn response ids into text
        self.unmatched = 0               # passes whose entropy could not be paired with their rows

    def attach(self) -> None:
        with self._lock:
            self._live += 1

    def detach(self) -> None:
        with self._lock:
            self._live = max(0, self._live - 1)
            if not self._live:
                self._entropy, self._passes = None, []

    def on_entropy(self, loss_mat: Any, loss_mask: Any) -> None:
        with self._lock:
            if self._live:
                self._entropy = (loss_mat.detach(), loss_mask)

    def on_advantages(self, data: Any) -> None:
        with self._lock:
            if self._live:
                self._passes.append((data, self._entropy))
                self._entropy = None

    def take(self) -> dict[str, Any] | None:
        """``run.log`` arguments for the step just computed, or None (a validation-only log)."""
        with self._lock:
            passes, self._passes, self._entropy = self._passes, [], None
        if not passes:
            return None
        parts = [self._arguments(data, entropy) for data, entropy in passes]
        out = parts[0] if len(parts) == 1 else _concat(parts, self._pad_id())
        if self.tokenizer is not None and "completions" in out:
            out["tokenizer"] = self.tokenizer
        return out

    def _pad_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad) if isinstance(pad, int) else 0

    def _arguments(self, data: Any, entropy: Any) -> dict[str, Any]:
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
        if entropy is not None and tuple(entropy[0].shape) == tuple(response_mask.shape):
            out["entropy"] = entropy[0]
        else:
            self.unmatched += 1
        if "responses" in keys and tuple(batch["responses"].shape) == tuple(response_mask.shape):
            # Token ids, with the tokenizer (take()): the hook decodes only the rollouts it keeps,
            # off this thread. Left padding of the prompts is a special token, skipped when decoded.
            out["completions"] = batch["responses"]
            if "prompts" in keys and batch["prompts"].shape[0] == response_mask.shape[0]:
                out["prompts"] = batch["prompts"]
        return out


def _concat(parts: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """The passes of one step as one batch: token fields padded to the widest pass.

    Response fields are padded on the right (the mask says which tokens are real); prompts,
    left-padded by verl, on the left with the pad token, which decoding skips.
    """
    import torch
    from torch.nn.functional import pad

    out: dict[str, Any] = {}
    for key in parts[0]:
        values = [p.get(key) for p in parts]
        if any(v is None for v in values):
            continue  # a part some passes lack is left out of the whole step
        if isinstance(values[0], list):
            out[key] = [item for v in values for item in v]
        elif values[0].ndim == 2:
            width = max(v.shape[-1] for v in values)
            if key == "prompts":
                out[key] = torch.cat([pad(v, (width - v.shape[-1], 0), value=pad_id) for v in values])
            else:
                out[key] = torch.cat([pad(v, (0, width - v.shape[-1])) for v in values])
        else:
            out[key] = torch.cat(values)
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
        depth = getattr(CAPTURE._depth, "value", 0)
        CAPTURE._depth.value = depth + 1
        try:
            out = original(*args, **kwargs)
        finally:
            CAPTURE._depth.value = depth
        if depth == 0:
            CAPTURE.on_advantages(out)
        return out

    advantage.__fadewatch__ = True
    return advantage


def _wrap_fit(original, on_exit):
    @functools.wraps(original)
    def fit(self, *args: Any, **kwargs: Any) -> Any:
        CAPTURE.tokenizer = getattr(self, "tokenizer", None)
        before = on_exit.live()
        try:
            out = original(self, *args, **kwargs)
        except BaseException as exc:  # Ctrl-C included: the run says how training ended
            on_exit.failed(exc)
            raise
        on_exit.returned(before)
        return out

    fit.__fadewatch__ = True
    return fit


# module -> (advantage function's global name, trainer class name)
TRAINER_MODULES = {
    "verl.trainer.ppo.ray_trainer": ("compute_advantage", "RayPPOTrainer"),
    "verl.trainer.ppo.v1.trainer_base": ("compute_advantage_for_multi_trajectories", "PPOTrainer"),
}


def patch_trainer_module(module: Any, on_exit) -> None:
    """Wrap agg_loss, the advantage function and ``fit`` of one verl trainer module (once).

    ``on_exit``: ``live()`` (the backends before fit), ``returned(before)`` and ``failed(exc)``.
    """
    advantage_name, trainer_name = TRAINER_MODULES[module.__name__]
    if not getattr(module.agg_loss, "__fadewatch__", False):
        module.agg_loss = _wrap_agg_loss(module.agg_loss)
    original = getattr(module, advantage_name)
    if not getattr(original, "__fadewatch__", False):
        setattr(module, advantage_name, _wrap_advantage(original))
    trainer = getattr(module, trainer_name)
    if not getattr(trainer.fit, "__fadewatch__", False):
        trainer.fit = _wrap_fit(trainer.fit, on_exit)
