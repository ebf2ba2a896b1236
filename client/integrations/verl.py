"""fadewatch for verl: a tracking backend named ``fadewatch``, hooked into every verl process.

Enable it from verl's configuration (nothing in the training code changes)::

    trainer.logger='["console","fadewatch"]'

verl loads the ``verl.plugins`` entry points of the installed packages whenever it is
imported, and fadewatch's (verl_plugin.py) runs ``setup()``. Where plugins are switched
off (``VERL_USE_EXTERNAL_PLUGINS``), a Ray setup hook does the same::

    +ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=fadewatch.integrations.verl.setup

``setup()`` only registers a post-import patch: verl's ``Tracking`` learns the ``fadewatch``
backend, and the trainer modules' per-step functions are wrapped when (and if) the process
imports them (see verl_capture.py). It never breaks training: with a verl release outside
the supported range, or when a patch fails, it logs one error and verl trains as if
``fadewatch`` were not in its logger list.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

import fadewatch
from fadewatch.integrations.common import VersionRange, installed_version, numeric_scalars, patch_on_import
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
_disabled: str | None = None  # why this process logs nothing to fadewatch, once setup found out
_backends_lock = threading.Lock()
_backends: list[FadewatchBackend] = []


class FadewatchBackend:
    """A verl tracking backend: one fadewatch run for one ``Tracking`` (one training)."""

    def __init__(self, project: str, experiment: str, config: Any = None, **init_options: Any):
        self.run = fadewatch.init(project=project, name=experiment, config=config, **init_options)
        self.failure: str | None = None
        self.errors = 0
        self._notices = Notices()
        self._finish_lock = threading.Lock()
        self._pending_step: int | None = None
        self._pending: dict[str, Any] = {}
        self._warned_entropy = False
        CAPTURE.attach()
        with _backends_lock:
            _backends.append(self)

    def log(self, data: dict[str, Any], step: int) -> None:
        """verl's metrics of ``step``, with the rollouts captured since the last call."""
        try:
            self._log(data, int(step))
        except Exception as exc:  # noqa: BLE001 - never break training
            self.errors += 1
            self._notices.error("verl-log", "fadewatch: could not log verl step %s (%r)", step, exc)

    def _log(self, data: dict[str, Any], step: int) -> None:
        if self.run.finished:
            return
        scalars = {("verl/" + k if k in _RESERVED else k): v for k, v in numeric_scalars(data).items()}
        arrays = CAPTURE.take()
        if self._pending_step is not None and self._pending_step != step:
            self._flush_pending()
        if arrays is None:
            # metrics without rollouts (validation): held until the step's other metrics arrive
            self._pending_step = step
            self._pending.update(scalars)
            return
        if "entropy" not in arrays and not self._warned_entropy:
            self._warned_entropy = True
            logger.warning("fadewatch: verl's entropy of step %d could not be paired with its responses (the batch "
                           "changed shape in between); such steps are logged without entropy", step)
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
        """Mark the run finished, or failed (exit code or exception), once; from any thread."""
        with self._finish_lock:
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
                self.failure = _describe(exc) if exc is not None else f"exit code {exit_code}"
                logger.error("fadewatch: verl training of run %s/%s failed (%s); marking the run failed",
                             self.run.project, self.run.name, self.failure)
            try:
                self.run.finish(status="failed" if self.failure else "finished", error=self.failure)
            finally:
                CAPTURE.detach()
                with _backends_lock:
                    if self in _backends:
                        _backends.remove(self)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _FitExit:
    """What the wrapped ``fit`` does when it ends: finish the runs that training made."""

    @staticmethod
    def live() -> set[int]:
        with _backends_lock:
            return {id(b) for b in _backends}

    @staticmethod
    def returned(before: set[int]) -> None:
        # the legacy trainer's Tracking is a local of fit(): nothing else would finish its run
        with _backends_lock:
            made = [b for b in _backends if id(b) not in before]
        for backend in made:
            backend.finish()

    @staticmethod
    def failed(exc: BaseException) -> None:
        with _backends_lock:
            live = list(_backends)
        for backend in live:
            backend.fail(exc)


def _patch_tracking(module: Any) -> None:
    """Teach verl's Tracking the ``fadewatch`` backend (or, disabled, to ignore it)."""
    tracking = module.Tracking
    if BACKEND not in tracking.supported_backend:  # first: verl asserts on unknown names
        tracking.supported_backend = [*tracking.supported_backend, BACKEND]
    if getattr(tracking.__init__, "__fadewatch__", False):
        return
    original_init, original_finish = tracking.__init__, tracking.finish

    @functools.wraps(original_init)
    def __init__(self, project_name, experiment_name, default_backend="console", config=None, *args, **kwargs):
        backends = [default_backend] if isinstance(default_backend, str) else list(default_backend or [])
        ours = BACKEND in backends
        original_init(self, project_name, experiment_name, [b for b in backends if b != BACKEND] or [],
                      config, *args, **kwargs)
        if not ours:
            return
        if _disabled is not None:
            logger.error("fadewatch: verl's logger list names fadewatch, but %s; verl trains as if fadewatch "
                         "were not in the list", _disabled)
            return
        try:
            self.logger[BACKEND] = FadewatchBackend(project_name, experiment_name, config)
        except Exception as exc:  # noqa: BLE001 - e.g. a name fadewatch refuses: train without it
            logger.error("fadewatch: could not start the run for verl (%s); training goes on without it", exc)

    @functools.wraps(original_finish)
    def finish(self, exit_code: int = 0, *args, **kwargs):
        try:
            return original_finish(self, exit_code, *args, **kwargs)
        finally:
            backend = getattr(self, "logger", {}).get(BACKEND)
            if backend is not None:
                backend.finish(exit_code)

    __init__.__fadewatch__ = True
    tracking.__init__, tracking.finish = __init__, finish


def _disable(reason: str) -> None:
    """From now on this process's Tracking ignores ``fadewatch``; it says why when it is asked for."""
    global _disabled
    if _disabled is None:
        _disabled = reason
        logger.debug("fadewatch: %s", reason)


def _patch_failed(module: Any, exc: Exception) -> None:
    _disable(f"it could not hook {module.__name__} ({exc!r})")


def setup() -> None:
    """Hook verl in this process (Ray ``worker_process_setup_hook``). Never raises; idempotent."""
    global _installed
    with _setup_lock:
        if _installed:
            return
        _installed = True
        try:
            _install(installed_version("verl"))
        except Exception as exc:  # noqa: BLE001 - verl must train whatever happens here
            _disable(f"its verl hook could not be set up ({exc!r})")


def _install(version: str | None) -> None:
    patches: dict[str, Any] = {"verl.utils.tracking": _patch_tracking}
    if version is None or not SUPPORTED_VERL.contains(version):
        _disable(f"the verl integration supports {SUPPORTED_VERL}, found verl {version}")
    else:
        patches.update({name: functools.partial(patch_trainer_module, on_exit=_FitExit)
                        for name in TRAINER_MODULES})
    patch_on_import(patches, _patch_failed)
