"""Delivering spooled records: one batch at a time, with backoff, shared by the sender
thread and ``fadewatch sync``."""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from fadewatch.spool import Entry, Spool

if TYPE_CHECKING:
    from fadewatch.api_client import ApiClient, Reply

__all__ = ["Backoff", "Clock", "Outcome", "deliver"]


class Clock:
    """Real time. Tests inject a fake with the same two methods."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float) -> None:
        """Wait on ``cond`` (held by the caller) until notified or ``timeout`` seconds pass."""
        cond.wait(max(0.0, timeout))


class Backoff:
    """Capped exponential backoff with jitter; Retry-After from the server wins."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, factor: float = 2.0,
                 max_retry_after: float = 300.0, rng: random.Random | None = None):
        self.base, self.cap, self.factor = base, cap, factor
        self.max_retry_after = max_retry_after
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt, counting this failure."""
        self.failures += 1
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        delay = min(self.cap, self.base * self.factor ** (self.failures - 1))
        return delay * (0.5 + 0.5 * self.rng.random())  # "equal jitter": never below half

    def reset(self) -> None:
        self.failures = 0


class Outcome(NamedTuple):
    """What ``deliver`` achieved: how many of the entries are done, and why it stopped."""

    done: int
    stored: int
    duplicates: int
    rejected: int
    stop: Reply | None  # None when every entry is done
    rejection: Reply | None = None  # the last refusal that put records aside


def deliver(api: ApiClient, run_id: int, entries: list[Entry], spool: Spool) -> Outcome:
    """POST ``entries`` in order, acknowledging them in the spool as the server confirms.

    A batch the server finds too large (413) or invalid (400/422) is split in halves until
    the guilty single records are found; those are put aside in the spool's rejected file.
    Delivery stops at the first answer a split cannot fix (retry, auth, unknown run).
    """
    stored = duplicates = rejected = done = 0
    rejection = None
    stack = [(0, len(entries))]
    while stack:
        lo, hi = stack.pop()
        chunk = entries[lo:hi]
        reply = api.post_steps(run_id, [e.data for e in chunk])
        kind = reply.kind
        if kind == "ok":
            body = reply.body if isinstance(reply.body, dict) else {}
            got_stored = int(body.get("stored", len(chunk)) or 0)
            stored += got_stored
            duplicates += int(body.get("duplicates", len(chunk) - got_stored) or 0)
            spool.ack(chunk[-1])
        elif kind in ("too_large", "rejected") and len(chunk) > 1:
            mid = (lo + hi) // 2
            stack.append((mid, hi))
            stack.append((lo, mid))
            continue
        elif kind in ("too_large", "rejected"):
            rejected += 1
            rejection = reply
            spool.reject(chunk)
        else:
            return Outcome(done, stored, duplicates, rejected, reply, rejection)
        done = hi
    return Outcome(done, stored, duplicates, rejected, None, rejection)
