"""What happened to a run's logged steps: the numbers behind ``run.health()``.

Shared by the training thread (``log()``), the statistics worker and the sender; a lock
guards the arithmetic only, so no thread ever waits on another's I/O here.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Counters"]


class Counters:
    """The numbers behind ``run.health()``; a lock around the arithmetic only."""

    NAMES = ("logged", "sent", "stored", "duplicates", "spooled", "replayed", "dropped",
             "rejected", "failed_batches", "stats_errors", "rollout_bytes", "rollouts_over_cap")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)
        self.last_error: str | None = None

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._values[name] += amount

    def error(self, message: str | None) -> None:
        if message:
            self.last_error = message

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._values)
        out["last_error"] = self.last_error
        return out
