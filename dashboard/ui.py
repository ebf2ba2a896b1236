"""Small layout pieces shared by the pages: empty states, badges, number and age formats."""

from __future__ import annotations

import math
import time

from dash import dcc, html

from fadewatch.errors import NotFoundError, ServerError, Unauthorized, Unavailable

__all__ = ["LOADING", "graph", "section", "empty_state", "error_state", "badge", "fmt_num", "fmt_signed", "fmt_age",
           "token_form", "GRAPH_CONFIG"]

GRAPH_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
                "toImageButtonOptions": {"format": "png", "scale": 2}}


LOADING = "loading…"  # what a chart or card says until its data is in


def graph(graph_id, figure: dict, wide: bool = False, csv: str | None = None) -> html.Div:
    """A chart in a card; `csv` links the download of the chart's series."""
    children = [dcc.Graph(id=graph_id, figure=figure, config=GRAPH_CONFIG)]
    if csv:
        children.append(html.A("CSV", href=csv, className="fw-card-link", title="Download these series as CSV"))
    return html.Div(children, className="fw-card wide" if wide else "fw-card")


def section(title: str, hint: str | None, *children, anchor: str | None = None) -> html.Section:
    head = [html.H2(title, className="fw-section", **({"id": anchor} if anchor else {}))]
    if hint:
        head.append(html.P(hint, className="fw-hint"))
    return html.Section([*head, *children])


def empty_state(title, *lines) -> html.Div:
    """What to do when there is nothing to show: a bold first line, then hints."""
    return html.Div([html.P(html.B(title)), *[html.P(line) for line in lines]], className="fw-empty")


def token_form() -> html.Div:
    return html.Div([
        html.P(html.B("This server needs an API token.")),
        html.P(["Create a read token with ", html.Code("fadewatch token create --project P --scope read"),
                " and paste it here; it is kept in a cookie of this browser only."]),
        html.Div([
            dcc.Input(id="fw-token-input", type="password", placeholder="fw_…", debounce=False,
                      style={"minWidth": "320px"}),
            html.Button("Use token", id="fw-token-save", className="fw-button primary", n_clicks=0),
        ], className="fw-toolbar", style={"justifyContent": "center"}),
        html.Div(id="fw-token-msg"),
    ], className="fw-empty")


def error_state(exc: Exception, what: str = "") -> html.Div:
    if isinstance(exc, Unauthorized):
        return token_form()
    if isinstance(exc, NotFoundError):
        return empty_state(f"{what or 'This'} was not found.", "It may belong to another project, or the id is wrong: "
                           "pick a run from the runs list.")
    if isinstance(exc, Unavailable):
        return empty_state("The fadewatch server does not answer.",
                           "Start it with `fadewatch server`; this page retries by itself.")
    if isinstance(exc, ServerError):
        return empty_state("The server refused the request.", str(exc))
    raise exc


def badge(label: str, kind: str | None = None) -> html.Span:
    return html.Span(label, className=f"fw-badge {kind or label}")


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_num(value, digits: int = 3) -> str:
    v = _finite(value)
    if v is None:
        return "–"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_signed(value, decimals: int = 2) -> str:
    """A value on a fixed scale around zero (sign balance in [-1, 1]): +0.00, not 2.4e-09."""
    v = _finite(value)
    if v is None:
        return "–"
    text = f"{v:+.{decimals}f}"
    return text.replace("-", "+", 1) if float(text) == 0 else text


def fmt_age(timestamp: float | None, now: float | None = None) -> str:
    """'12 s ago', '3 min ago', '5 h ago', '2 d ago'."""
    if timestamp is None:
        return "no data yet"
    seconds = max(0.0, (now if now is not None else time.time()) - float(timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"
