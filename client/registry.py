"""The runs of this process: ``fadewatch.init()``, ``fadewatch.run``, and finishing at exit."""

from __future__ import annotations

import atexit
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fadewatch.errors import UsageError
from fadewatch.notices import logger
from fadewatch.runs import Run
from fadewatch.settings import get_settings

__all__ = ["current_run", "finish", "init", "log"]

EXIT_TIMEOUT = 10.0

_registry_lock = threading.Lock()
_active: list[Run] = []
_current: Run | None = None
_hooks_installed = False
_uncaught_exception: BaseException | None = None


def init(project: str | None = None, name: str | None = None, config: Any = None, *,
         url: str | None = None, token: str | None = None, mode: str | None = None,
         dir: str | Path | None = None, **options: Any) -> Run:
    """Start (or resume, by project + name) a run; never blocks on the server.

    ``options``: stats_config, queue_size, batch_size, batch_interval, and for tests transport,
    clock, backoff.
    """
    global _current
    settings = get_settings().with_overrides(url=url, token=token, mode=mode, dir=dir)
    project = project or "default"
    name = name or time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run = Run(settings, project, name, config, **options)
    run.on_finished = _forget
    with _registry_lock:
        _install_hooks()
        if run.mode != "disabled":
            _active.append(run)
        _current = run
    return run


def current_run() -> Run | None:
    """The run made by the latest ``init()``, until it finishes."""
    return _current


def log(step: int, **kwargs: Any) -> None:
    """``run.log`` on the current run."""
    run = _current
    if run is None:
        raise UsageError("fadewatch.log() before fadewatch.init()")
    run.log(step, **kwargs)


def finish(timeout: float = 30.0, status: str = "finished", error: str | BaseException | None = None) -> bool:
    """Finish the current run; True when there is none."""
    run = _current
    return True if run is None else run.finish(timeout=timeout, status=status, error=error)


def _forget(run: Run) -> None:
    global _current
    with _registry_lock:
        if run in _active:
            _active.remove(run)
        if _current is run:
            _current = None


def _install_hooks() -> None:
    """Once per process: finish open runs at exit, marking them failed after an uncaught error."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        global _uncaught_exception
        _uncaught_exception = value
        previous(kind, value, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_all_at_exit)


def _finish_all_at_exit() -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    status = "failed" if _uncaught_exception is not None else "finished"
    for run in list(_active):
        try:
            run.finish(timeout=max(0.5, deadline - time.monotonic()), status=status, error=_uncaught_exception)
        except Exception as exc:  # noqa: BLE001 - exiting anyway
            logger.warning("fadewatch: could not finish run %s at exit: %r", run.name, exc)
