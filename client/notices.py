"""Rate-limited log messages, so a long outage or a full queue does not flood the log."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["Notices", "logger"]

logger = logging.getLogger("fadewatch")


class Notices:
    """Log each kind of message at once the first time, then at most once per ``interval``."""

    def __init__(self, interval: float = 60.0, clock=time.monotonic):
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def emit(self, key: str, level: int, message: str, *args: object) -> bool:
        """Log unless ``key`` was logged within the interval; True when it was logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            message += " (%d similar messages suppressed)"
            args = (*args, skipped)
        logger.log(level, message, *args)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.emit(key, logging.WARNING, message, *args)

    def error(self, key: str, message: str, *args: object) -> bool:
        return self.emit(key, logging.ERROR, message, *args)

    def forget(self, key: str) -> None:
        """Let the next message of this kind through at once (the condition ended)."""
        with self._lock:
            self._last.pop(key, None)
            self._suppressed.pop(key, None)
