"""Alert events as the charts need them: one marker per event at the step it fired."""

from __future__ import annotations

import threading
import time

from fadewatch.dashboard.api import ApiError, ReadClient

__all__ = ["run_alerts", "active_counts", "marker"]

_CACHE: dict = {}
_LOCK = threading.Lock()
_TTL = 1.0


def marker(event: dict) -> dict | None:
    """{"id", "step", "label"} of an alert event, or None when it has no step."""
    step = event.get("step")
    if step is None:
        return None
    rule = event.get("rule_name") or event.get("rule") or event.get("kind") or "alert"
    severity = event.get("severity")
    metric = event.get("metric")
    label = f"{rule}" + (f" · {metric}" if metric else "") + (f" ({severity})" if severity else "")
    return {"id": event.get("id", f"{rule}-{step}"), "step": int(step), "label": label}


def _fetch(client: ReadClient, params: dict) -> list[dict] | None:
    """Alert events, or None when the server has no alerts API."""
    key = (id(client), tuple(sorted(params.items())))
    now = time.monotonic()
    with _LOCK:
        hit = _CACHE.get(key)
        if hit and now - hit[0] < _TTL:
            return hit[1]
    try:
        events = client.alerts(**params)
    except ApiError:
        events = None
    with _LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = (now, events)
    return events


def run_alerts(client: ReadClient, run_id: int) -> list[dict]:
    """Markers of every alert event of a run, oldest first (the same for all of its charts)."""
    events = _fetch(client, {"run_id": int(run_id), "limit": 500}) or []
    out = [m for m in (marker(e) for e in events) if m is not None]
    return sorted(out, key=lambda m: m["step"])


def active_counts(client: ReadClient) -> dict[int, int] | None:
    """Firing alerts per run id, or None when the server has no alerts API."""
    events = _fetch(client, {"state": "firing", "limit": 1000})
    if events is None:
        return None
    counts: dict[int, int] = {}
    for e in events:
        if e.get("run_id") is not None:
            counts[int(e["run_id"])] = counts.get(int(e["run_id"]), 0) + 1
    return counts
