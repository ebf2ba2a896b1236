"""``fadewatch.watch(trainer)``: one line in a Hugging Face TRL GRPOTrainer or RLOOTrainer.

Public callbacks carry the step boundaries (optimizer step, end of training); TRL keeps the
per-rollout data inside internal methods, so those are wrapped on the trainer instance only
(never on the class): reward scoring, generation (which tags each rollout with its index),
the loss (per-token entropy and log-probabilities, the advantages it used), the training
step (the loss value) and the gradient norm. At each optimizer step every process hands its
rollouts to the main process, which files them by generation pass (trl_passes.py) and logs
the passes that are complete, in whole groups.
"""

from __future__ import annotations

import threading
from typing import Any

from transformers import TrainerCallback

import fadewatch
from fadewatch.errors import UsageError
from fadewatch.integrations.common import VersionRange, installed_version, scalar_name
from fadewatch.integrations.trl_batch import RolloutCapture
from fadewatch.integrations.trl_gather import ToMain
from fadewatch.integrations.trl_passes import PassAssembler, Record
from fadewatch.integrations.trl_trainer import MetricsSince, is_rloo, trainer_config
from fadewatch.notices import Notices, logger
from fadewatch.records import config_to_json

__all__ = ["SUPPORTED_TRL", "TrlWatcher", "watch_trl"]

# The GRPO/RLOO internals hooked here have the same names, arguments and return values in
# every release of this range (read in the sources of 1.0.0, 1.10.0, 1.15.0 and 1.16.0).
SUPPORTED_TRL = VersionRange("trl", "1.0", "1.17")
_REQUIRED = ("_generate_and_score_completions", "_compute_loss", "training_step", "train")
# without these the rest is still logged, and a warning names what is missing
_OPTIONAL = {"_calculate_rewards": ("rewards",), "_get_per_token_logps_and_entropies": ("entropy", "logprobs"),
             "_get_grad_norm": ()}
_PARTS = {"rewards": "rewards", "entropy": "per-token entropy", "logprobs": "per-token log-probabilities",
          "completions": "completion texts", "advantages": "advantages (no rollout is logged)"}


def watch_trl(trainer: Any, project: str | None = None, name: str | None = None, *,
              allow_untested: bool = False, finish_timeout: float = 30.0, **init_options: Any) -> TrlWatcher:
    """Log every optimizer step of a TRL GRPOTrainer or RLOOTrainer to a fadewatch run."""
    import trl

    kinds = tuple(getattr(trl, n) for n in ("GRPOTrainer", "RLOOTrainer") if hasattr(trl, n))
    if not isinstance(trainer, kinds):
        raise UsageError(f"fadewatch.watch() takes a TRL GRPOTrainer or RLOOTrainer, got {type(trainer).__name__}")
    if getattr(trainer, "_fadewatch_watcher", None) is not None:
        raise UsageError("this trainer is already watched by fadewatch")
    if not allow_untested:
        SUPPORTED_TRL.check(installed_version("trl"), "fadewatch.watch()", "allow_untested=True")
    missing = [n for n in _REQUIRED if not callable(getattr(trainer, n, None))]
    if missing:
        raise UsageError(f"this {type(trainer).__name__} lacks {', '.join(missing)}, which fadewatch.watch() "
                         f"hooks: supported TRL versions are {SUPPORTED_TRL}")
    return TrlWatcher(trainer, project, name, finish_timeout, init_options)


class _Callback(TrainerCallback):
    def __init__(self, watcher: TrlWatcher):
        self.watcher = watcher

    def on_train_begin(self, args, state, control, **kwargs):
        self.watcher._train_begin()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.watcher._optimizer_step()

    def on_step_end(self, args, state, control, **kwargs):
        self.watcher._step_end(state)

    def on_train_end(self, args, state, control, **kwargs):
        self.watcher._end("finished")


class TrlWatcher:
    """What ``fadewatch.watch(trainer)`` returns: the run (main process only) and the hook's state.

    ``run`` is None on the other processes. ``failure`` is the exception that ended training
    ("ValueError: ..."), if one did. ``errors`` counts failures of the hook itself, which are
    logged and never raised into training. ``missing`` names the parts of the rollouts the
    trainer did not hand over (each is warned about once). ``dropped`` counts rollouts left out
    because their group was not whole. ``detach()`` removes the hook.
    """

    def __init__(self, trainer: Any, project: str | None, name: str | None, finish_timeout: float,
                 init_options: dict[str, Any]):
        self.trainer = trainer
        self.is_main = bool(trainer.accelerator.is_main_process)
        self.failure: str | None = None
        self.errors = 0
        self.missing: set[str] = set()
        self.run: fadewatch.Run | None = None
        self._finish_timeout = finish_timeout
        user_config = config_to_json(init_options.pop("config", None)) or {}
        self._init_args = dict(project=project, name=name or getattr(trainer.args, "run_name", None),
                               config={**trainer_config(trainer), **user_config}, **init_options)
        self._capture = RolloutCapture(trainer, kl_in_reward=is_rloo(trainer), keep_texts=self.is_main)
        self._passes = PassAssembler(int(trainer.num_generations), self._capture.generation_of)
        self._to_main = ToMain(trainer.accelerator, self._hook_error)
        self._notices = Notices()
        self._metrics = MetricsSince(trainer)
        self._loss: Any = None
        self._grad_norm: Any = None
        self._learning_rate: float | None = None
        self._local = threading.local()
        self._originals: dict[str, Any] = {}
        if self.is_main:
            self.run = fadewatch.init(**self._init_args)
        self._callback = _Callback(self)
        self._install()
        trainer._fadewatch_watcher = self

    # ---- installing ------------------------------------------------------------------

    def _install(self) -> None:
        trainer = self.trainer
        for name in (*_REQUIRED, *_OPTIONAL):
            original = getattr(trainer, name, None)
            if callable(original):
                self._originals[name] = original
                setattr(trainer, name, getattr(self, "_wrapped" + name if name.startswith("_") else "_wrapped_" + name))
            else:
                self._capture.missing.update(_OPTIONAL[name])
        trainer.add_callback(self._callback)

    def detach(self) -> None:
        """Remove the hook from the trainer (the run stays as it is; finish it with ``run.finish()``)."""
        for name in self._originals:
            self.trainer.__dict__.pop(name, None)
        self._originals.clear()
        self.trainer.remove_callback(self._callback)
        self.trainer._fadewatch_watcher = None

    def _training(self) -> bool:
        return bool(self.trainer.model.training)

    def _hook_error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self._notices.error("trl-" + what, "fadewatch: the TRL hook failed while %s (%r); training goes on "
                            "(%d hook errors so far)", what, exc, self.errors)

    def _guarded(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the hook never breaks training
            self._hook_error(what, exc)
            return None

    # ---- wrapped TRL methods (every process) -------------------------------------------

    def _wrapped_calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
        out = self._originals["_calculate_rewards"](*args, **kwargs)
        if self._training():
            self._guarded("reading rewards", self._capture.on_rewards, out)
        return out

    def _wrapped_generate_and_score_completions(self, *args: Any, **kwargs: Any) -> Any:
        self._local.generation_logps = []
        try:
            out = self._originals["_generate_and_score_completions"](*args, **kwargs)
        finally:
            logps, self._local.generation_logps = self._local.generation_logps, None
        if self._training():
            self._guarded("reading the generation batch", self._capture.on_generation, out, logps)
        return out

    def _wrapped_compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        self._local.in_loss, self._local.tensors = True, (None, None)
        try:
            loss = self._originals["_compute_loss"](model, inputs, *args, **kwargs)
        finally:
            self._local.in_loss = False
        if self._training():
            self._guarded("reading a micro-batch", self._capture.on_micro_batch, inputs, *self._local.tensors)
        self._local.tensors = (None, None)
        return loss

    def _wrapped_get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
        out = self._originals["_get_per_token_logps_and_entropies"](*args, **kwargs)
        try:
            if getattr(self._local, "in_loss", False):
                self._local.tensors = (out[0], out[1])  # entropies are None unless the loss asked for them
            elif getattr(self._local, "generation_logps", None) is not None:
                self._local.generation_logps.append(out[0])
        except Exception as exc:  # noqa: BLE001 - an unexpected return value: log without it
            self._hook_error("reading log-probabilities", exc)
        return out

    def _wrapped_training_step(self, *args: Any, **kwargs: Any) -> Any:
        loss = self._originals["training_step"](*args, **kwargs)
        if hasattr(loss, "detach"):
            self._loss = loss.detach() if self._loss is None else self._loss + loss.detach()
        return loss

    def _wrapped_get_grad_norm(self, *args: Any, **kwargs: Any) -> Any:
        self._grad_norm = self._originals["_get_grad_norm"](*args, **kwargs)
        return self._grad_norm

    def _wrapped_train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            out = self._originals["train"](*args, **kwargs)
        except BaseException as exc:
            self._end("failed", exc)
            raise
        self._end("finished")
        return out

    # ---- callbacks -------------------------------------------------------------------

    def _train_begin(self) -> None:
        if self.is_main and (self.run is None or self.run.finished):
            self.failure = None
            self.run = self._guarded("starting the run", fadewatch.init, **self._init_args)

    def _optimizer_step(self) -> None:
        getter = getattr(self.trainer, "_get_learning_rate", None)
        if getter is not None:
            self._learning_rate = self._guarded("reading the learning rate", getter)

    def _step_end(self, state: Any) -> None:
        chunk = self._guarded("collecting the step", self._capture.take)
        loss, self._loss = self._loss, None
        if self.trainer.accelerator.num_processes > 1:
            chunks, loss = self._to_main.send(chunk, loss)  # every process takes part, whatever happened
        else:
            chunks = [chunk] if chunk is not None else []
        if not chunks and self._capture.generations:
            self._capture.missing.add("advantages")  # the loss did not go through _compute_loss
        if not self.is_main or self.run is None or self.run.finished:
            return
        final = bool(state.max_steps) and state.global_step >= state.max_steps
        record = self._guarded("assembling the step's rollouts", self._assemble, chunks, final)
        self._guarded("logging the step", self._log_step, state, record, loss)

    def _assemble(self, chunks: list[dict[str, Any]], final: bool) -> Record | None:
        for chunk in chunks:
            self._passes.add(chunk)
        return self._passes.take(final=final)

    def _log_step(self, state: Any, record: Record | None, loss: Any) -> None:
        # TRL's own metrics under "train/", the names Transformers gives them in W&B and TensorBoard.
        scalars: dict[str, Any] = {scalar_name("train/" + k): v for k, v in self._metrics.take().items()}
        extra = {"loss": loss, "grad_norm": self._grad_norm, "learning_rate": self._learning_rate,
                 "epoch": state.epoch}
        scalars.update({f"train/{k}": v for k, v in extra.items() if v is not None})
        self._grad_norm = None
        arrays: dict[str, Any] = {}
        if record is not None:
            arrays = record.arrays
            scalars.update({"rollouts/generation": record.generation, "rollouts/pass": record.pass_index})
        self._warn_missing(record)
        self.run.log(state.global_step, **arrays, **scalars)

    def _warn_missing(self, record: Record | None) -> None:
        """Warn once per part of the rollouts the trainer did not hand over."""
        missing = set(self._capture.missing)
        if record is not None:
            missing |= {p for p in ("rewards", "entropy", "logprobs", "completions") if p not in record.arrays}
        for part in sorted(missing - self.missing):
            self.missing.add(part)
            logger.warning("fadewatch: this %s gives fadewatch no %s; its steps are logged without them "
                           "(everything else is logged)", type(self.trainer).__name__, _PARTS[part])

    def _end(self, status: str, exc: BaseException | None = None) -> None:
        run = self.run
        if run is None or run.finished:
            return
        left = self._passes.pending
        if left or self._passes.dropped:
            logger.warning("fadewatch: %d rollout(s) of run %s/%s were not logged because their group was not "
                           "whole when training ended or a process could not send them (%d waiting at the end)",
                           self._passes.dropped + left, run.project, run.name, left)
        if exc is not None:
            self.failure = f"{type(exc).__name__}: {exc}"
            logger.error("fadewatch: training of run %s/%s failed with %s; marking the run failed",
                         run.project, run.name, type(exc).__name__)
        self._guarded("finishing the run",
                      lambda: run.finish(timeout=self._finish_timeout, status=status, error=exc))

    @property
    def dropped(self) -> int:
        return self._passes.dropped
