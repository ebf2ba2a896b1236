"""fadewatch for verl: a tracking backend named ``fadewatch``, installed by a Ray setup hook.

Enable it from verl's configuration (nothing in the training code changes)::

    trainer.logger='["console","fadewatch"]'
    +ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=fadewatch.integrations.verl.setup

Ray runs ``setup()`` in every worker process, the trainer's included. It only registers a
post-import patch: verl's ``Tracking`` learns the ``fadewatch`` backend, and the trainer
modules' per-step functions are wrapped when (and if) the process imports them (see
verl_capture.py). A driver that builds the trainer itself can call ``setup()`` first.
"""

from __future__ import annotations

import functools
import importlib.abc
import sys
import threading
from typing import Any

import fadewatch
from fadewatch.integrations.common import VersionRange, installed_version, numeric_scalars
from fadewatch.integrations.verl_capture import CAPTURE, TRAINER_MODULES, patch_trainer_module
from fadewatch.notices import Notices, logger

__all__ = ["BACKEND", "SUPPORTED_VERL", "FadewatchBackend", "setup"]

BACKEND = "fadewatch"
# Read against the source of verl 0.9.1: Tracking, agg_loss, compute_advantage and
# compute_advantage_for_multi_trajectories, RayPPOTrainer / PPOTrainer.fit.
SUPPORTED_VERL = VersionRange("verl", "0.9", "0.10")
# run.log's own arguments: a verl metric of one of these names is sent as verl/<name>
_RESERVED = {"advantages", "rewards", "group_ids", "entropy", "mask", "completions", "logprobs", "prompts",
             "tokenizer", "reward_parts", "step"}

_setup_lock = threading.Lock()
_installed = False
_backends: list[FadewatchBackend] = []


class FadewatchBackend:
    """A verl tracking backend: one fadewatch run for one ``Tracking`` (one training)."""

    def __init__(self, project: str, experiment: str, config: Any = None, **init_options: Any):
        self.run = fadewatch.init(project=project, name=experiment, config=config, **init_options)
        self.failure: str | None = None
        self.errors = 0
        self._notices = Notices()
        self._pending_step: int | None = None
        self._pending: dict[str, Any] = {}
        _backends.append(self)

    def log(self, data: dict[str, Any], step: int) -> None:
        """verl's metrics of ``step``, with the rollouts captured since the last call."""
        try:
            self._log(data, int(step))
        except Exception as exc:  # noqa: BLE001 - never break training
            self.errors += 1
            self._notices.error("verl-log", "fadewatch: could not log verl step %s (%r)", step, exc)

    def _log(self, data: dict[str, Any], step: int) -> None:
        scalars = {("verl/" + k if k in _RESERVED else k): v for k, v in numeric_scalars(data).items()}
        arrays = CAPTURE.take()
        if self._pending_step is not None and self._pending_step != step:
            self._flush_pending()
        if arrays is None:
            # metrics without rollouts (validation): held until the step's other metrics arrive
            self._pending_step = step
            self._pending.update(scalars)
            return
        scalars = {**self._pending, **scalars}
        self._pending_step, self._pending = None, {}
        self.run.log(step, **arrays, **scalars)

    def _flush_pending(self) -> None:
        step, scalars = self._pending_step, self._pending
        self._pending_step, self._pending = None, {}
        if step is not None and scalars:
            self.run.log(step, **scalars)

    def fail(self, exc: BaseException) -> None:
        self.finish(exit_code=1, exc=exc)

    def finish(self, exit_code: int = 0, exc: BaseException | None = None) -> None:
        """Mark the run finished, or failed (exit code or exception), once."""
        if self.run.finished:
            return
        try:
            self._flush_pending()
        except Exception as err:  # noqa: BLE001
            self.errors += 1
            logger.warning("fadewatch: could not log the last verl metrics (%r)", err)
        if exc is None and exit_code:
            exc = sys.exc_info()[1]  # verl finishes its trackers in a `finally` while the error propagates
        if exc is not None or exit_code:
            self.failure = f"{type(exc).__name__}: {exc}" if exc is not None else f"exit code {exit_code}"
            logger.error("fadewatch: verl training of run %s/%s failed (%s); marking the run failed",
                         self.run.project, self.run.name, self.failure)
        try:
            self.run.finish(status="failed" if self.failure else "finished", error=self.failure)
        finally:
            if self in _backends:
                _backends.remove(self)


def _fail_all(exc: BaseException) -> None:
    for backend in list(_backends):
        backend.fail(exc)


def _patch_tracking(module: Any) -> None:
    """Teach verl's Tracking the ``fadewatch`` backend."""
    tracking = module.Tracking
    if getattr(tracking.__init__, "__fadewatch__", False):
        return
    if BACKEND not in tracking.supported_backend:
        tracking.supported_backend = [*tracking.supported_backend, BACKEND]
    original_init, original_finish = tracking.__init__, tracking.finish

    @functools.wraps(original_init)
    def __init__(self, project_name, experiment_name, default_backend="console", config=None, *args, **kwargs):
        backends = [default_backend] if isinstance(default_backend, str) else list(default_backend or [])
        ours = BACKEND in backends
        original_init(self, project_name, experiment_name, [b for b in backends if b != BACKEND] or [],
                      config, *args, **kwargs)
        if ours:
            try:
                self.logger[BACKEND] = FadewatchBackend(project_name, experiment_name, config)
            except Exception as exc:  # noqa: BLE001 - e.g. a name fadewatch refuses: train without it
                logger.error("fadewatch: could not start the run for verl (%s); training goes on without it", exc)

    @functools.wraps(original_finish)
    def finish(self, exit_code: int = 0, *args, **kwargs):
        first = not getattr(self, "_finished", False)
        try:
            return original_finish(self, exit_code, *args, **kwargs)
        finally:
            backend = getattr(self, "logger", {}).get(BACKEND)
            if first and backend is not None:
                backend.finish(exit_code)

    __init__.__fadewatch__ = True
    tracking.__init__, tracking.finish = __init__, finish


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after a module's own code, the first time it is imported."""

    def __init__(self, patches: dict[str, Any]):
        self.patches = patches

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        patch, loader = self.patches.pop(name), spec.loader
        exec_module = loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            _apply(patch, module)

        loader.exec_module = exec_then_patch
        return spec


def _apply(patch, module) -> None:
    try:
        patch(module)
    except Exception as exc:  # noqa: BLE001 - a failed patch must not break verl
        logger.error("fadewatch: could not hook %s (%r); this process logs nothing to fadewatch",
                     module.__name__, exc)


def setup() -> None:
    """Ray ``worker_process_setup_hook``: hook verl in this process. Never raises; idempotent."""
    global _installed
    with _setup_lock:
        if _installed:
            return
        _installed = True
        version = installed_version("verl")
        if version is None or not SUPPORTED_VERL.contains(version):
            logger.error("fadewatch: the verl integration supports %s, found verl %s; not hooking verl",
                         SUPPORTED_VERL, version)
            return
        patches = {"verl.utils.tracking": _patch_tracking}
        patches.update({name: functools.partial(patch_trainer_module, on_failure=_fail_all)
                        for name in TRAINER_MODULES})
        for name in list(patches):
            if name in sys.modules:  # already imported: patch it now
                _apply(patches.pop(name), sys.modules[name])
        if patches:
            sys.meta_path.insert(0, _AfterImport(patches))
