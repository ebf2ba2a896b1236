"""Reading an HTTP answer: what kind it is, how long it asks to wait, and what went wrong.

The same rules serve every caller: the hook's sender and ``fadewatch sync`` (an answer's
kind), the dashboard and the demo (the error line), and the server's alert delivery
(whether a receiver's answer is worth a retry, and its Retry-After).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable
from datetime import timezone
from typing import Any

__all__ = [
    "RETRIABLE",
    "HONOURS_RETRY_AFTER",
    "is_retriable",
    "answer_kind",
    "parse_retry_after",
    "error_detail",
    "describe_errors",
]

# Besides 5xx and no answer at all: timed out, too early, rate limited. Any other 4xx
# will not get better by sending the same request again.
RETRIABLE = frozenset({408, 425, 429})
# Answers whose Retry-After is obeyed: rate limited, service (the database) away or
# read-only (503), storage full (507). A long outage then costs one small request per
# Retry-After, instead of backing off to the cap and resuming up to a cap's length late.
HONOURS_RETRY_AFTER = frozenset({429, 503, 507})


def is_retriable(status: int | None) -> bool:
    """Whether the same request may succeed later; ``None`` is no answer (connection, timeout)."""
    return status is None or status >= 500 or status in RETRIABLE


def answer_kind(status: int | None) -> str:
    """ok | retry | auth | not_found | too_large | rejected."""
    if is_retriable(status):
        return "retry"
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 413:
        return "too_large"
    return "rejected"


def parse_retry_after(value: object, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date.

    None when absent or unreadable: garbage, NaN, infinite or negative seconds, impossible
    dates. A date in the past is 0. Huge but finite waits are returned as they are;
    every caller caps the wait it obeys.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _date_delay(text, time.time() if now is None else now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _date_delay(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": HTTP dates are always GMT
            when = when.replace(tzinfo=timezone.utc)
        delay = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, delay) if math.isfinite(delay) else None


def describe_errors(errors: Iterable[Any], limit: int = 5) -> str:
    """Validation errors (pydantic's and FastAPI's ``{"loc", "msg"}``) as "where: what; ..."."""
    parts = []
    for e in list(errors)[:limit]:
        if not isinstance(e, dict):
            parts.append(str(e))
            continue
        loc = list(e.get("loc") or ())
        if loc and loc[0] == "body":  # where a request's errors start: says nothing
            loc = loc[1:]
        where = ".".join(str(x) for x in loc)
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def error_detail(body: Any, fallback: str = "", limit: int = 300) -> str:
    """One short line from an API error body: ``{"detail": "text"}`` or FastAPI's
    ``{"detail": [{"loc": [...], "msg": ...}, ...]}``; ``fallback`` when it holds neither."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list) and detail:
        text = describe_errors(detail)
    elif isinstance(detail, str):
        text = detail
    elif detail is None or detail == [] or detail == {}:
        text = ""
    else:
        text = json.dumps(detail, separators=(",", ":"), default=str)
    text = " ".join(text.split()) or " ".join(str(fallback).split())
    return text[:limit]
