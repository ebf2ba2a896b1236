"""Hooks into training frameworks; nothing here imports the frameworks until it is used.

    fadewatch.watch(trainer, project="math-grpo")          # TRL GRPOTrainer / RLOOTrainer

verl is enabled from its configuration instead (``fadewatch.integrations.verl``), and OpenRLHF
from its Ray job's runtime environment (``fadewatch.integrations.openrlhf``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["watch"]


def watch(trainer: Any, project: str | None = None, name: str | None = None, **options: Any) -> Any:
    """Log every optimizer step of ``trainer`` to a new fadewatch run; returns the watcher.

    ``trainer`` is a TRL ``GRPOTrainer`` or ``RLOOTrainer``. ``options`` go to
    ``fadewatch.init`` (config, url, token, mode, dir, ...), except ``allow_untested`` (try a
    TRL release outside the supported range) and ``finish_timeout`` (seconds to wait for
    delivery when training ends).
    """
    from fadewatch.errors import UsageError

    module = type(trainer).__module__.split(".", 1)[0]
    if module != "trl" and not any(c.__module__.startswith("trl.") for c in type(trainer).__mro__):
        raise UsageError(f"fadewatch.watch() takes a TRL GRPOTrainer or RLOOTrainer, got {type(trainer).__name__}; "
                         "for your own loop use fadewatch.init() and run.log()")
    from fadewatch.integrations.trl import watch_trl

    return watch_trl(trainer, project, name, **options)
