"""Runs: every run with its status, newest values, alerts and trends; filters; live.

Filtering, sorting and paging happen on the server (GET /runs): the page asks for one page of
runs, each with its firing-alert count, and the projects list for the filter.
"""

from __future__ import annotations

import hashlib
import json

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from fadewatch.errors import ServerError
from fadewatch.protocol import metrics as m
from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import sparkline_svg
from fadewatch.dashboard.figures.theme import run_color
from fadewatch.dashboard.ui import badge, empty_state, error_state, fmt_age, fmt_num, fmt_signed

dash.register_page(__name__, path="/", name="Runs", title="fadewatch · runs", order=0)

STATUSES = ["running", "finished", "failed", "crashed"]
SPARK_KEYS = (m.REWARD_MEAN, m.ENTROPY_MEAN)
SPARK_POINTS = 60
PAGE_SIZE = 50
SORTS = [{"label": "newest activity", "value": "updated"}, {"label": "firing alerts", "value": "alerts_firing"},
         {"label": "newest run", "value": "created"}, {"label": "name", "value": "name"},
         {"label": "most steps", "value": "last_step"}]


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
            html.Div([html.Label("Search", htmlFor="runs-search"),
                      dcc.Input(id="runs-search", type="search", debounce=True,
                                placeholder="run or project name")], className="fw-field"),
            html.Div([html.Label("Sort by", htmlFor="runs-sort"),
                      dcc.Dropdown(id="runs-sort", options=SORTS, value="updated", clearable=False)],
                     className="fw-field"),
            html.Div([html.Label("Compare runs", htmlFor="runs-compare"),
                      dcc.Dropdown(id="runs-compare", multi=True, placeholder="pick runs to overlay")],
                     className="fw-field", style={"minWidth": "320px"}),
            html.Div(id="runs-compare-link"),
        ]),
        html.Div(id="runs-table"),
        html.Div(className="fw-toolbar", children=[
            html.Button("← Newer", id="runs-prev", className="fw-button", n_clicks=0),
            html.Span(id="runs-range", className="fw-hint"),
            html.Button("Older →", id="runs-next", className="fw-button", n_clicks=0),
        ]),
        dcc.Store(id="runs-shown"),
        dcc.Store(id="runs-offset", data=0),
        dcc.Interval(id="runs-interval", interval=config().refresh_ms * 2, n_intervals=0),
    ])


def _sparklines(api, page: list[dict]) -> dict[int, dict[str, str | None]]:
    """Trend images of the page's runs, cached on the client until a run has a newer step; the
    runs not cached are read together (GET /compare, up to 32 runs a request)."""
    cache = api.__dict__.setdefault("_sparkline_cache", {})
    missing = [r for r in page if (r["id"], r["last_step"]) not in cache]
    for start in range(0, len(missing), 32):
        chunk = missing[start:start + 32]
        try:
            body = api.get("/compare", runs=",".join(str(r["id"]) for r in chunk), keys=",".join(SPARK_KEYS),
                           max_points=SPARK_POINTS)
        except ServerError:
            continue
        if len(cache) > 2000:
            cache.clear()
        last = {r["id"]: r["last_step"] for r in chunk}
        for read in body["series"]:
            data, rid = read["series"], read["run_id"]
            cache[(rid, last[rid])] = {
                k: sparkline_svg(data[k]["values"], run_color(rid)) if data.get(k, {}).get("values") else None
                for k in SPARK_KEYS}
    return {r["id"]: cache.get((r["id"], r["last_step"]), {k: None for k in SPARK_KEYS}) for r in page}


def _alerts_cell(run: dict):
    firing, latest = run.get("alerts_firing", 0), run.get("latest_alert")
    title = None if latest is None else f"newest: {latest['rule']} ({latest['state']}, step {latest['step']})"
    return html.Td(badge(str(firing), "firing") if firing else "0", className="num", title=title)


def _row(run: dict, sparks: dict) -> html.Tr:
    summary = run.get("summary") or {}
    color = run_color(run["id"])
    spark_cells = [html.Td(html.Img(src=sparks.get(k), alt=f"{k} trend", height=28) if sparks.get(k) else "–")
                   for k in SPARK_KEYS]
    return html.Tr([
        html.Td([html.Span(className="fw-swatch", style={"background": color}),
                 dcc.Link(run["name"], href=href(f"runs/{run['id']}"), className="fw-runname")]),
        html.Td(run["project"]),
        html.Td(badge(run["status"])),
        html.Td("–" if run["last_step"] is None else f"{run['last_step']:,}", className="num"),
        html.Td(fmt_age(run.get("last_time"))),
        html.Td(fmt_num(summary.get(m.REWARD_MEAN)), className="num"),
        html.Td(fmt_num(summary.get(m.ENTROPY_MEAN)), className="num"),
        html.Td(fmt_signed(summary.get(m.SIGN_BALANCE)), className="num"),
        _alerts_cell(run),
        *spark_cells,
    ], id={"type": "runs-row", "run": run["id"]})


HEAD = ["Run", "Project", "Status", "Step", "Updated", "Reward", "Entropy", "Balance b", "Alerts",
        "Reward trend", "Entropy trend"]


def _signature(*parts) -> str:
    """What the table shows, hashed: an unchanged table is not sent again."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@callback(
    Output("runs-offset", "data"),
    Input("runs-prev", "n_clicks"),
    Input("runs-next", "n_clicks"),
    Input("runs-project", "value"),
    Input("runs-status", "value"),
    Input("runs-search", "value"),
    Input("runs-sort", "value"),
    State("runs-offset", "data"),
    prevent_initial_call=True,
)
def move_page(_prev, _next, _project, _statuses, _q, _sort, offset):
    """A new filter starts at the first page; the buttons step through pages."""
    step = {"runs-prev": -PAGE_SIZE, "runs-next": PAGE_SIZE}.get(dash.ctx.triggered_id)
    return 0 if step is None else max(0, (offset or 0) + step)


@callback(
    Output("runs-table", "children"),
    Output("runs-project", "options"),
    Output("runs-compare", "options"),
    Output("runs-range", "children"),
    Output("runs-shown", "data"),
    Input("runs-interval", "n_intervals"),
    Input("runs-offset", "data"),
    State("runs-project", "value"),
    State("runs-status", "value"),
    State("runs-search", "value"),
    State("runs-sort", "value"),
    State("runs-compare", "value"),
    State("runs-compare", "options"),
    State("runs-shown", "data"),
)
def refresh_runs(_n, offset, project, statuses, q, sort, picked, picked_options, shown_sig):
    api = client()
    try:
        body = api.get("/runs", project=project or None, status=statuses or None, q=(q or "").strip() or None,
                       sort=sort or "updated", limit=PAGE_SIZE, offset=offset or 0)
        projects = [p["name"] for p in api.get("/projects")["projects"]]
    except ServerError as exc:
        return error_state(exc), no_update, no_update, "", None
    page, total = body["runs"], body["total"]
    sig = _signature(offset, project, statuses, q, sort, projects, total, [
        (r["id"], r["name"], r["project"], r["status"], r["last_step"], fmt_age(r.get("last_time")),
         r.get("summary"), r.get("alerts_firing"), r.get("latest_alert")) for r in page])
    if sig == shown_sig:
        return no_update, no_update, no_update, no_update, no_update
    filtered = bool(project or statuses or (q or "").strip())
    first = (offset or 0) + 1
    shown = f"{first:,}–{first + len(page) - 1:,} of {total:,} runs" if page else ""
    return _table(api, page, filtered), projects, _compare_options(page, picked, picked_options), shown, sig


def _compare_options(page: list[dict], picked, picked_options) -> list[dict]:
    """The runs of this page, and the runs picked already (which may sit on other pages)."""
    options = [{"label": f"{r['name']} (#{r['id']}, {r['project']})", "value": r["id"]} for r in page]
    held = {o["value"] for o in options}
    kept = [o for o in (picked_options or []) if o["value"] in set(picked or ()) and o["value"] not in held]
    return kept + options


def _table(api, page: list[dict], filtered: bool):
    if not page and not filtered:
        return empty_state(
            ["No runs yet: run ", html.Code("fadewatch demo"), " to watch a small RL training live."],
            "Or point a trainer at this server: set FADEWATCH_URL to this server's address and call "
            "fadewatch.init(project=..., name=...) then run.log(step, advantages=..., rewards=...).",
        )
    if not page:
        return empty_state("No runs match these filters.", "Clear the project, status or search filter.")
    sparks = _sparklines(api, page)
    rows = [_row(r, sparks[r["id"]]) for r in page]
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in HEAD])), html.Tbody(rows)],
                      className="fw-table", id="runs-table-el")


@callback(Output("runs-compare-link", "children"), Input("runs-compare", "value"), State("runs-compare", "options"))
def compare_link(selected, _options):
    if not selected:
        return html.Span("")
    ids = ",".join(str(int(i)) for i in selected)
    return dcc.Link(html.Button(f"Compare {len(selected)} run{'s' if len(selected) > 1 else ''}",
                                className="fw-button primary"), href=href(f"compare?runs={ids}"))
