"""Waiting on conditions with a deadline instead of sleeping blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class GaveUp(Exception):
    """Raised by a probe when what it waits for can no longer happen (the server it waits on
    has exited): wait_until passes it on at once instead of waiting out its deadline."""


def wait_until(
    probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Call probe until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except GaveUp:
            raise
        except Exception as exc:  # probes may fail while a server starts
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from last_error
        time.sleep(interval)


def returns(call: Callable[[], T], timeout: float = 30.0, what: str = "the call") -> T:
    """Run ``call`` in a thread and fail unless it returns within ``timeout`` seconds.

    For "never waits on X" checks: with X frozen (a gated worker, a server that never
    answers), a call that waits on X never returns, so a generous deadline tells "never"
    from "slow" whatever the machine's load. Its result, or its exception, is handed back.
    """
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what} did not return within {timeout}s: it waits on something frozen")
    if "error" in box:
        raise box["error"]
    return box.get("value")
