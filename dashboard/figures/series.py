"""Pure figure builders for scalar charts: API-shaped data in, Plotly figure dicts out.

Every builder returns plain dicts (JSON-ready, cheap to build) and a "trace map" naming
what each trace index holds, so live updates can append points to the right traces.
Strings a user typed go through `text()`: Plotly reads a few HTML-like tags in labels,
so they are escaped and show literally.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from fadewatch.dashboard.figures.charts import Chart, Trace
from fadewatch.dashboard.figures.theme import ALERT, NEUTRAL, WARNING, axis, base_layout, run_color, with_alpha

__all__ = [
    "text",
    "rounded",
    "empty_figure",
    "alert_trace",
    "alert_color",
    "alert_shapes",
    "ALERT_AXIS",
    "series_figure",
    "compare_figure",
    "projection_trace",
    "interval_trace",
    "sparkline_svg",
    "no_data_annotation",
]

ALERT_AXIS = "yaxis9"   # an invisible [0, 1] axis over the plot: alert markers sit at its top


def text(value) -> str:
    """A user's string made safe for Plotly labels: tags show as typed, never interpreted."""
    return html.escape(str(value), quote=False)


def rounded(values, digits: int = 5) -> list:
    """Values cut to `digits` significant digits: what a chart can show, in half the bytes."""
    fmt = f"%.{digits}g"
    return [None if v is None else float(fmt % v) for v in values]


def no_data_annotation(message: str) -> dict:
    return {"text": text(message), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"size": 12}}


def empty_figure(message: str, height: int = 280, title: str | None = None) -> dict:
    layout = base_layout(title, height=height)
    layout["xaxis"].update(visible=False)
    layout["yaxis"].update(visible=False)
    layout["annotations"] = [no_data_annotation(message)]
    return {"data": [], "layout": layout}


def alert_color(severity: str | None) -> str:
    return ALERT if severity == "critical" else WARNING


def alert_trace(alerts: Sequence[dict]) -> dict:
    """Triangles at the top of the plot at the steps where alerts fired, with their names."""
    return {
        "type": "scatter", "mode": "markers", "name": "alerts", "yaxis": "y9",
        "x": [a["step"] for a in alerts], "y": [1.0] * len(alerts),
        "hovertext": [text(a.get("label", "alert")) for a in alerts],
        "hovertemplate": "step %{x}: %{hovertext}<extra>alert</extra>",
        "marker": {"symbol": "triangle-down", "size": 11, "color": [alert_color(a.get("severity")) for a in alerts],
                   "line": {"width": 0}},
        # Out of the legend: the triangles explain themselves on hover, and legends are short of room.
        "showlegend": False, "cliponaxis": False,
    }


def alert_shapes(alerts: Sequence[dict]) -> list[dict]:
    """A dashed vertical line per alert step, red where a critical alert fired."""
    worst: dict[int, str] = {}
    for a in alerts:
        step = int(a["step"])
        if worst.get(step) != "critical":
            worst[step] = a.get("severity") or "warning"
    return [
        {"type": "line", "xref": "x", "yref": "paper", "x0": s, "x1": s, "y0": 0, "y1": 1,
         "line": {"color": with_alpha(alert_color(sev), 0.55), "width": 1, "dash": "dash"}, "layer": "below",
         "name": f"alert-{s}"}
        for s, sev in sorted(worst.items())
    ]


def _alert_axis() -> dict:
    return {"overlaying": "y", "range": [0, 1.02], "visible": False, "fixedrange": True}


def _hover(chart: Chart, tr: Trace) -> str:
    fmt = ".1%" if chart.percent and tr.axis == "y" else ".4g"
    return f"%{{y:{fmt}}}"


def _points(data: dict, key: str) -> dict:
    return data.get(key) or {"steps": [], "values": [], "min": [], "max": []}


def series_figure(chart: Chart, traces: Iterable[Trace], data: dict, downsampled: bool,
                  alerts: Sequence[dict] = (), height: int = 280) -> tuple[dict, list[list[str]]]:
    """A scalar chart; trace 0 is the alert markers, then per key an optional min/max band and its line.

    `data` maps keys to {"steps", "values", "min", "max"} as the series API returns them.
    Returns the figure and the trace map: [[key, role], ...] with role "alerts", "lo", "hi", "line".
    """
    fig_data = [alert_trace(alerts)]
    trace_map: list[list[str]] = [["", "alerts"]]
    any_points = False
    for tr in traces:
        p = _points(data, tr.key)
        has = bool(p["steps"])
        any_points = any_points or has
        yaxis = "y2" if tr.axis == "y2" else "y"
        if downsampled:
            # Downsampled buckets keep their extremes: a shaded band from min to max.
            common = {"type": "scatter", "mode": "lines", "x": p["steps"], "yaxis": yaxis,
                      "line": {"width": 0, "color": tr.color}, "hoverinfo": "skip",
                      "showlegend": False, "legendgroup": tr.key}
            fig_data.append({**common, "name": f"{text(tr.label)} min", "y": rounded(p["min"])})
            fig_data.append({**common, "name": f"{text(tr.label)} max", "y": rounded(p["max"]),
                             "fill": "tonexty", "fillcolor": with_alpha(tr.color, 0.18)})
            trace_map += [[tr.key, "lo"], [tr.key, "hi"]]
        line = {"width": 1.6, "color": tr.color}
        if tr.dash:
            line["dash"] = tr.dash
        fig_data.append({
            "type": "scatter", "mode": "lines", "name": text(tr.label), "x": p["steps"], "y": rounded(p["values"]),
            "yaxis": yaxis, "line": line, "legendgroup": tr.key, "showlegend": has,
            "hovertemplate": _hover(chart, tr), "connectgaps": False,
        })
        trace_map.append([tr.key, "line"])

    layout = base_layout(text(chart.title), y_title=chart.y_title, height=height)
    layout[ALERT_AXIS] = _alert_axis()
    if chart.percent:
        layout["yaxis"]["tickformat"] = ".0%"
    if chart.y_range:
        layout["yaxis"]["range"] = list(chart.y_range)
    if any(t.axis == "y2" for t in traces):
        # Ticks of its own: an overlaying axis otherwise copies the left axis's tick positions.
        layout["yaxis2"] = axis(chart.y2_title, overlaying="y", side="right", showgrid=False, tickmode="auto")
        layout["margin"]["r"] = 64
    if len(traces) == 1:
        layout["showlegend"] = False
        layout["margin"]["t"] = 36
    else:
        layout["margin"]["t"] += 20 * (legend_rows([t.label for t in traces]) - 1)
    shapes = alert_shapes(alerts)
    if chart.band is not None:
        shapes = _band_shapes(chart.band) + shapes
    layout["shapes"] = shapes
    if not any_points:
        keys = ", ".join(t.key for t in traces) or chart.title
        layout["annotations"] = [no_data_annotation(f"not logged yet: {keys}")]
        for name in ("xaxis", "yaxis", "yaxis2"):
            if name in layout:
                layout[name]["visible"] = False
    return {"data": fig_data, "layout": layout}, trace_map


def legend_rows(labels: Sequence[str], width_px: int = 500) -> int:
    """About how many rows a horizontal legend of these labels takes in a half-width chart."""
    rows, used = 1, 0
    for label in labels:
        item = 40 + 6.5 * len(label)
        if used and used + item > width_px:
            rows, used = rows + 1, 0
        used += item
    return rows


def _band_shapes(level: float) -> list[dict]:
    """The alert zones |y| > level, labelled with the collapse each side leads to."""
    fill = with_alpha(ALERT, 0.08)
    common = {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "line": {"width": 0},
              "fillcolor": fill, "layer": "below"}
    return [
        {**common, "y0": level, "y1": 1.05, "name": "band-hi",
         "label": {"text": "success-heavy: entropy collapse risk", "textposition": "top left",
                   "font": {"size": 10, "color": ALERT}}},
        {**common, "y0": -1.05, "y1": -level, "name": "band-lo",
         "label": {"text": "failure-heavy: geometry collapse risk", "textposition": "bottom left",
                   "font": {"size": 10, "color": ALERT}}},
    ]


def compare_figure(metric: str, runs: Sequence[tuple[dict, dict]], height: int = 320) -> dict:
    """One metric of several runs overlaid by step; each run in its own colour on every page.

    `runs` holds (run, points) pairs; trace i is run i's line.
    """
    data = []
    for run, p in runs:
        p = p or {"steps": [], "values": []}
        data.append({
            "type": "scatter", "mode": "lines", "x": p["steps"], "y": rounded(p["values"]),
            "name": text(f"{run['name']} (#{run['id']})"),
            "line": {"width": 1.6, "color": run_color(run["id"])}, "hovertemplate": "%{y:.4g}",
        })
    layout = base_layout(text(metric), y_title=text(metric), height=height)
    if not any(p and p["steps"] for _, p in runs):
        layout["annotations"] = [no_data_annotation(f"none of these runs logged {metric}")]
    return {"data": data, "layout": layout}


# The line is drawn while the projection lies within this many of the rule's horizons: further
# out, a slow drift would draw a line across most of the chart for nothing imminent.
SHOWN_HORIZONS = 10


def projection_trace(forecast: dict | None) -> dict:
    """The dashed line of the server's entropy forecast (the early-warning rule's own reading):
    from the fitted entropy now to the step where the fit meets the collapse level."""
    shown = (forecast is not None and forecast.get("projected_step") is not None
             and forecast.get("fitted") is not None and forecast.get("collapse_level") is not None
             and forecast["projected_step"] - forecast["step"] <= SHOWN_HORIZONS * (forecast.get("horizon") or 1))
    if not shown:
        x, y, name = [], [], "projection"
    else:
        x = [forecast["step"], forecast["projected_step"]]
        y = [forecast["fitted"], forecast["collapse_level"]]
        left = forecast["projected_step"] - forecast["step"]
        name = f"projected collapse in ~{left:,} steps" if left > 0 else "at the collapse level"
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, "yaxis": "y",
            "line": {"color": NEUTRAL, "dash": "dash", "width": 1.5}, "showlegend": shown,
            "hovertemplate": "%{y:.3g}"}


def interval_trace(forecast: dict | None) -> dict:
    """The forecast's interval: where at its uncertainty the level is met, from the earliest step
    to the latest (to the horizon's end when the shallow edge does not fall), drawn on the level."""
    line = projection_trace(forecast)
    shown = bool(line["x"]) and forecast.get("early_step") is not None and line["x"][1] > line["x"][0]
    if shown:
        late = forecast.get("late_step")
        if late is None:
            late = forecast["step"] + SHOWN_HORIZONS * (forecast.get("horizon") or 1)
        x = [forecast["early_step"], late]
        y = [forecast["collapse_level"]] * 2
    else:
        x, y = [], []
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": "interval", "yaxis": "y",
            "line": {"color": with_alpha(NEUTRAL, 0.45), "width": 8}, "showlegend": False,
            "hovertemplate": "interval of the projection<extra></extra>"}


def sparkline_svg(values: Sequence[float | None], color: str, width: int = 120, height: int = 28) -> str:
    """A tiny line as an SVG data URI (numbers only: nothing a user typed goes in)."""
    import base64

    pts = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    if len(pts) >= 2:
        lo = min(v for _, v in pts)
        hi = max(v for _, v in pts)
        span = (hi - lo) or 1.0
        n = max(pts[-1][0], 1)
        coords = " ".join(
            f"{2 + (width - 4) * i / n:.1f},{height - 2 - (height - 4) * (v - lo) / span:.1f}" for i, v in pts
        )
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>')
    svg.append("</svg>")
    return "data:image/svg+xml;base64," + base64.b64encode("".join(svg).encode()).decode()
