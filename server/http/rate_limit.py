"""Request rate limits: an in-process token bucket per API token (per client address when open).

Each key may make `rate` requests a second on average and `burst` in a row; past that the
answer is 429 with `Retry-After`, the time until the bucket holds a request again. Buckets
live in this process only: behind several replicas each one limits on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fadewatch.server.settings import ServerSettings

__all__ = ["RateLimiter", "rate_limiter_for"]


class RateLimiter:
    """Token buckets by key; `acquire` answers None (go on) or the seconds to wait."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst, self.clock, self.max_keys = rate, float(burst), clock, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = None
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            # The least recently seen key goes first; a key that comes back starts full,
            # which only ever errs on the side of letting a request through.
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """Retry-After in whole seconds (the header takes no fractions), at least 1."""
        return str(max(1, math.ceil(wait)))


def rate_limiter_for(settings: ServerSettings) -> RateLimiter | None:
    if settings.rate_limit_per_s <= 0:
        return None
    return RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
