"""Alert markers of a run's charts: every firing of its alerts, read in one request."""

from __future__ import annotations

from fadewatch.errors import ServerError

__all__ = ["run_markers", "marker"]


def marker(m: dict) -> dict:
    """{"id", "step", "label", "severity"} of one firing, from the API's alert marker."""
    label = f"{m['rule']} ({m['severity']})"
    if m.get("summary"):
        label += f": {m['summary']}"
    return {"id": int(m["event_id"]), "step": int(m["step"]), "label": label, "severity": m["severity"]}


def run_markers(api, run_id: int, after: list[int] | None = None) -> list[dict]:
    """Markers of the times the run's alerts fired, oldest first (the same on all its charts).

    ``after``: the marker ids a page holds already; only newer firings are fetched then.
    An unanswered request draws no new markers rather than failing the page.
    """
    newest = max(after) if after else None
    try:
        found = api.get(f"/runs/{int(run_id)}/alert-markers", kind="firing", after_event=newest)["markers"]
    except ServerError:
        return []
    return [marker(m) for m in found]
