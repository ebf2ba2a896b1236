"""The run page's header: name, the meta line the live refresh redraws, and export links."""

from __future__ import annotations

from urllib.parse import quote

from dash import dcc, html

from fadewatch.dashboard.context import href
from fadewatch.dashboard.figures.theme import run_color
from fadewatch.dashboard.pages.run.regime import regime_badge
from fadewatch.dashboard.ui import badge, fmt_age

__all__ = ["header", "meta", "csv_href"]


def csv_href(run_id: int, keys) -> str:
    """The CSV export of some of a run's scalars."""
    return href(f"export/runs/{int(run_id)}.csv?keys=" + quote(",".join(keys), safe=",/@:"))


def header(run: dict) -> html.Div:
    rid = run["id"]
    return html.Div([
        html.H1([html.Span(className="fw-swatch", style={"background": run_color(rid)}), run["name"]],
                className="fw-title", id="run-name"),
        html.Div(id="run-meta", className="fw-meta", children=meta(run)),
        html.Div(className="fw-toolbar", children=[
            dcc.Link("Compare with other runs", href=href(f"compare?runs={rid}")),
            html.A("Download all scalars (CSV)", href=href(f"export/runs/{rid}.csv"), download=f"run-{rid}.csv"),
            html.A("Static report (HTML)", href=href(f"export/runs/{rid}/report.html"),
                   download=f"run-{rid}.html"),
        ]),
    ])


def meta(run: dict, regime: dict | None = None) -> list:
    """Project, status, regime, newest step, steps stored, age, id and what ended the run."""
    return [
        html.Span(["project ", html.B(run["project"])]),
        badge(run["status"]),
        *([found] if (found := regime_badge(regime)) is not None else []),
        html.Span(["step ", html.B("–" if run["last_step"] is None else f"{run['last_step']:,}")]),
        html.Span([html.B(f"{run['step_count']:,}"), " steps stored"]),
        html.Span(["updated ", html.B(fmt_age(run.get("last_time")))]),
        html.Span(f"run #{run['id']}"),
        *([html.Span(["ended by ", html.Code(run["error"], id="run-error")], title=run["error"])]
          if run.get("error") else []),
    ]
