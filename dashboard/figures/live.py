"""Live refresh: turn the points newer than what a page holds into appends to its figures.

A page keeps a small state per group of charts (the newest step it holds, how many points,
each figure's trace map); a refresh fetches only steps after that step and extends traces
in place (Dash Patch), so the browser receives the new points and nothing else. Past
`2 x` the downsampled size the page reloads in full, which downsamples again.
"""

from __future__ import annotations

from collections.abc import Sequence

from dash import Patch

from fadewatch.dashboard.figures.series import alert_color, alert_shapes, rounded, text

__all__ = ["series_appends", "apply_appends", "apply_alerts", "count_points", "new_alerts", "heat_signature"]


def series_appends(trace_map: Sequence[Sequence[str]], series: dict) -> list[tuple[int, list, list]]:
    """(trace index, new x, new y) for each trace whose key has new points."""
    out = []
    for i, (key, role) in enumerate(trace_map):
        if role not in ("line", "lo", "hi"):
            continue
        p = series.get(key)
        if not p or not p["steps"]:
            continue
        ys = p["values"] if role == "line" else p["min"] if role == "lo" else p["max"]
        out.append((i, list(p["steps"]), rounded(ys)))
    return out


def apply_appends(patch: Patch, appends: Sequence[tuple[int, list, list]],
                  lines: Sequence[int] = ()) -> bool:
    """Extend the traces of `patch`; returns whether anything was added."""
    for i, xs, ys in appends:
        patch["data"][i]["x"].extend(xs)
        patch["data"][i]["y"].extend(ys)
        if i in lines:
            patch["data"][i]["showlegend"] = True
    if appends:
        # The "not logged yet" note goes, and the axes an empty chart hides come back.
        patch["layout"]["annotations"] = []
        patch["layout"]["xaxis"]["visible"] = True
        patch["layout"]["yaxis"]["visible"] = True
    return bool(appends)


def new_alerts(alerts: Sequence[dict], held_ids: Sequence) -> list[dict]:
    held = set(held_ids or ())
    return [a for a in alerts if a["id"] not in held]


def apply_alerts(patch: Patch, alerts: Sequence[dict]) -> None:
    """Add alert markers (trace 0) and their vertical lines to a figure."""
    if not alerts:
        return
    patch["data"][0]["x"].extend([a["step"] for a in alerts])
    patch["data"][0]["y"].extend([1.0] * len(alerts))
    patch["data"][0]["hovertext"].extend([text(a.get("label", "alert")) for a in alerts])
    patch["data"][0]["marker"]["color"].extend([alert_color(a.get("severity")) for a in alerts])
    patch["layout"]["shapes"].extend(alert_shapes(alerts))


def count_points(series: dict) -> int:
    """The most points any one series holds."""
    return max((len(p["steps"]) for p in series.values()), default=0)


def heat_signature(matrix: dict) -> list:
    """What must stay equal for new columns to line up with the held ones."""
    edges = matrix.get("edges") or []
    return [len(edges), edges[0] if edges else None, edges[-1] if edges else None, matrix.get("labels")]
