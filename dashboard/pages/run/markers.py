"""Alert events as the charts need them: one marker per firing, at the step it fired."""

from __future__ import annotations

import threading
import time

from fadewatch.api_client import ApiClient
from fadewatch.errors import ServerError

__all__ = ["run_alerts", "active_counts", "marker"]

_CACHE: dict = {}
_FIRINGS: dict = {}
_LOCK = threading.Lock()
_TTL = 1.0
_MAX_ENTRIES = 512


def marker(alert: dict, event: dict) -> dict:
    """{"id", "step", "label", "severity"} of one firing event of an alert."""
    label = f"{alert['rule']} ({alert['severity']})"
    if event.get("summary"):
        label += f": {event['summary']}"
    return {"id": f"{alert['id']}:{event['id']}", "step": int(event["step"]), "label": label,
            "severity": alert["severity"]}


def _remember(store: dict, key, value) -> None:
    with _LOCK:
        if len(store) > _MAX_ENTRIES:
            store.clear()
        store[key] = value


def _fetch(client: ApiClient, params: dict) -> list[dict] | None:
    """Alerts matching `params`, cached for a second; None when the server cannot say."""
    key = (id(client), tuple(sorted(params.items())))
    with _LOCK:
        hit = _CACHE.get(key)
    if hit and time.monotonic() - hit[0] < _TTL:
        return hit[1]
    try:
        alerts = client.alerts(**params)
    except ServerError:
        alerts = None
    _remember(_CACHE, key, (time.monotonic(), alerts))
    return alerts


def _firings(client: ApiClient, alert: dict) -> list[dict]:
    """Firing events of an alert; read again only when the alert fired or resolved anew."""
    key = (id(client), alert["id"], alert.get("fired_step"), alert.get("resolved_step"), alert["state"])
    with _LOCK:
        hit = _FIRINGS.get(key)
    if hit is not None:
        return hit
    try:
        events = client.alert(alert["id"])["events"]
    except ServerError:
        return []
    found = [e for e in events if e["kind"] == "firing"]
    _remember(_FIRINGS, key, found)
    return found


def run_alerts(client: ApiClient, run_id: int) -> list[dict]:
    """Markers of every time an alert of the run fired, oldest first (the same on all its charts)."""
    out = []
    for alert in _fetch(client, {"run_id": int(run_id), "limit": 500}) or []:
        if alert.get("fired_step") is not None:
            out.extend(marker(alert, e) for e in _firings(client, alert))
    return sorted(out, key=lambda m: (m["step"], m["id"]))


def active_counts(client: ApiClient) -> dict[int, int] | None:
    """Firing alerts per run id, or None when the server cannot say."""
    alerts = _fetch(client, {"state": "firing", "limit": 5000})
    if alerts is None:
        return None
    counts: dict[int, int] = {}
    for a in alerts:
        counts[int(a["run_id"])] = counts.get(int(a["run_id"]), 0) + 1
    return counts
