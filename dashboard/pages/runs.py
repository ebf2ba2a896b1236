"""Runs: every run with its status, newest values, alerts and trends; filters; live."""

from __future__ import annotations

import hashlib
import json

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from fadewatch.dashboard.pages.run import markers
from fadewatch.errors import ServerError
from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import sparkline_svg
from fadewatch.dashboard.figures.theme import run_color
from fadewatch.dashboard.ui import badge, empty_state, error_state, fmt_age, fmt_num, fmt_signed

dash.register_page(__name__, path="/", name="Runs", title="fadewatch · runs", order=0)

STATUSES = ["running", "finished", "failed", "crashed"]
SPARK_KEYS = ("reward/mean", "entropy/mean")
SPARK_POINTS = 60
MAX_SPARKLINES = 60


def layout(**_query) -> html.Div:
    return html.Div([
        html.H1("Runs", className="fw-title"),
        html.P("Every run this server holds, newest activity first. Click a run for its diagnostics; "
               "pick several to overlay them.", className="fw-hint"),
        html.Div(className="fw-toolbar", children=[
            html.Div([html.Label("Project", htmlFor="runs-project"),
                      dcc.Dropdown(id="runs-project", placeholder="all projects", clearable=True)],
                     className="fw-field"),
            html.Div([html.Label("Status", htmlFor="runs-status"),
                      dcc.Dropdown(id="runs-status", options=STATUSES, multi=True, placeholder="any status")],
                     className="fw-field"),
            html.Div([html.Label("Compare runs", htmlFor="runs-compare"),
                      dcc.Dropdown(id="runs-compare", multi=True, placeholder="pick runs to overlay")],
                     className="fw-field", style={"minWidth": "320px"}),
            html.Div(id="runs-compare-link"),
        ]),
        html.Div(id="runs-table"),
        dcc.Store(id="runs-shown"),
        dcc.Interval(id="runs-interval", interval=config().refresh_ms * 2, n_intervals=0),
    ])


def _sparklines(api, run: dict) -> dict[str, str | None]:
    """Trend images of a run, cached on the client until the run has a newer step."""
    cache = api.__dict__.setdefault("_sparkline_cache", {})
    key = (run["id"], run["last_step"])
    if key not in cache:
        try:
            data = api.series(run["id"], list(SPARK_KEYS), max_points=SPARK_POINTS)["series"]
        except ServerError:
            return {k: None for k in SPARK_KEYS}
        if len(cache) > 2000:
            cache.clear()
        cache[key] = {k: sparkline_svg(data[k]["values"], run_color(run["id"])) if data.get(k, {}).get("values")
                      else None for k in SPARK_KEYS}
    return cache[key]


def _row(run: dict, alerts: dict | None, sparks: dict) -> html.Tr:
    summary = run.get("summary") or {}
    color = run_color(run["id"])
    firing = None if alerts is None else alerts.get(run["id"], 0)
    spark_cells = [html.Td(html.Img(src=sparks.get(k), alt=f"{k} trend", height=28) if sparks.get(k) else "–")
                   for k in SPARK_KEYS]
    return html.Tr([
        html.Td([html.Span(className="fw-swatch", style={"background": color}),
                 dcc.Link(run["name"], href=href(f"runs/{run['id']}"), className="fw-runname")]),
        html.Td(run["project"]),
        html.Td(badge(run["status"])),
        html.Td("–" if run["last_step"] is None else f"{run['last_step']:,}", className="num"),
        html.Td(fmt_age(run.get("last_time"))),
        html.Td(fmt_num(summary.get("reward/mean")), className="num"),
        html.Td(fmt_num(summary.get("entropy/mean")), className="num"),
        html.Td(fmt_signed(summary.get("sign/balance")), className="num"),
        html.Td("–" if firing is None else (badge(str(firing), "firing") if firing else "0"), className="num"),
        *spark_cells,
    ], id={"type": "runs-row", "run": run["id"]})


HEAD = ["Run", "Project", "Status", "Step", "Updated", "Reward", "Entropy", "Balance b", "Alerts",
        "Reward trend", "Entropy trend"]


def _signature(*parts) -> str:
    """What the table shows, hashed: an unchanged table is not sent again."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@callback(
    Output("runs-table", "children"),
    Output("runs-project", "options"),
    Output("runs-compare", "options"),
    Output("runs-shown", "data"),
    Input("runs-interval", "n_intervals"),
    Input("runs-project", "value"),
    Input("runs-status", "value"),
    State("runs-shown", "data"),
)
def refresh_runs(_n, project, statuses, shown_sig):
    api = client()
    try:
        every = api.runs(limit=5000)
    except ServerError as exc:
        return error_state(exc), no_update, no_update, None
    alerts = markers.active_counts(api) if every else None
    sig = _signature(project, statuses, alerts, [
        (r["id"], r["name"], r["project"], r["status"], r["last_step"], fmt_age(r.get("last_time")), r.get("summary"))
        for r in every])
    if sig == shown_sig:
        return no_update, no_update, no_update, no_update
    table, projects, options = _table(api, every, project, statuses, alerts)
    return table, projects, options, sig


def _table(api, every: list[dict], project, statuses, alerts):
    projects = sorted({r["project"] for r in every})
    compare_options = [{"label": f"{r['name']} (#{r['id']}, {r['project']})", "value": r["id"]} for r in every]
    if not every:
        return empty_state(
            ["No runs yet: run ", html.Code("fadewatch demo"), " to watch a small RL training live."],
            "Or point a trainer at this server: set FADEWATCH_URL to this server's address and call "
            "fadewatch.init(project=..., name=...) then run.log(step, advantages=..., rewards=...).",
        ), projects, compare_options
    shown = [r for r in every if (not project or r["project"] == project)
             and (not statuses or r["status"] in statuses)]
    if not shown:
        return empty_state("No runs match these filters.", "Clear the project or status filter."), \
            projects, compare_options
    rows = [_row(r, alerts, _sparklines(api, r) if i < MAX_SPARKLINES else {}) for i, r in enumerate(shown)]
    table = html.Table([html.Thead(html.Tr([html.Th(h) for h in HEAD])), html.Tbody(rows)],
                       className="fw-table", id="runs-table-el")
    return table, projects, compare_options


@callback(Output("runs-compare-link", "children"), Input("runs-compare", "value"), State("runs-compare", "options"))
def compare_link(selected, _options):
    if not selected:
        return html.Span("")
    ids = ",".join(str(int(i)) for i in selected)
    return dcc.Link(html.Button(f"Compare {len(selected)} run{'s' if len(selected) > 1 else ''}",
                                className="fw-button primary"), href=href(f"compare?runs={ids}"))
