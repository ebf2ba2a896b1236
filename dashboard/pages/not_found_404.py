"""Any other path: say where to go."""

from __future__ import annotations

import dash
from dash import dcc, html

from fadewatch.dashboard.context import href

dash.register_page(__name__, path="/404", name="Not found", title="fadewatch · not found")


def layout(**_query) -> html.Div:
    return html.Div(className="fw-empty", children=[
        html.P(html.B("There is no page here.")),
        html.P(["Start from the ", dcc.Link("runs list", href=href("")), "."]),
    ])
