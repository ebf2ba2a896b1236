"""Compare: any metric of several runs overlaid, aligned by step, live."""

from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import compare_figure, empty_figure
from fadewatch.dashboard.figures.live import apply_appends
from fadewatch.dashboard.ui import LOADING, empty_state, error_state, graph
from fadewatch.errors import ServerError
from fadewatch.protocol.metrics import DIFFICULTY_PEAK, ENTROPY_MEAN, REWARD_MEAN, SIGN_BALANCE

dash.register_page(__name__, path="/compare", name="Compare", title="fadewatch · compare", order=1)

DEFAULT_METRICS = (REWARD_MEAN, ENTROPY_MEAN, SIGN_BALANCE, DIFFICULTY_PEAK)
# Points per run and metric in a full load: about one per pixel of a chart half the page
# wide. Drawing is what a compare page spends its time on (16 runs x 4 charts of lines), and
# its cost grows with the points of all the lines: past 8 runs, a chart's 4,000 points are
# shared out (250 a run for 16), never fewer than 100 a run.
MAX_POINTS = 500
CHART_POINTS = 4000


def points_per_run(runs: int) -> int:
    return max(100, min(MAX_POINTS, CHART_POINTS // max(runs, 1)))


def parse_ids(raw) -> list[int]:
    out = []
    for part in str(raw or "").split(","):
        part = part.strip()
        if part.isdigit() and int(part) not in out:
            out.append(int(part))
    return out


def _metric_options(runs: list[dict]) -> list[str]:
    keys = set()
    for r in runs:
        keys |= set(r.get("summary") or {})
    return sorted(keys)


OPTION_RUNS = 50  # runs offered in the picker at a time: the newest, or those matching what is typed


def _option(run: dict) -> dict:
    return {"label": f"{run['name']} (#{run['id']}, {run['project']})", "value": run["id"]}


def _read(api, run_ids, metrics=(), after=None) -> dict:
    """The runs (and their series of `metrics`) in one request: {"runs": [...], "series": [...]}."""
    if not run_ids:
        return {"runs": [], "series": []}
    params = {"runs": ",".join(str(int(i)) for i in run_ids), "keys": ",".join(metrics) or None}
    if metrics:
        params["max_points"] = points_per_run(len(run_ids))
    if after is not None:
        params["after"] = ",".join(str(a) for a in after)
    return api.get("/compare", **params)


def layout(runs: str | None = None, metrics: str | None = None, **_query):
    ids = parse_ids(runs)
    try:
        chosen = _read(client(), ids)["runs"]  # in the order the link gives
        newest = client().runs(limit=OPTION_RUNS)
    except ServerError as exc:
        return error_state(exc)
    keys = _metric_options(chosen)
    wanted = [m for m in (metrics or "").split(",") if m in keys] or [m for m in DEFAULT_METRICS if m in keys] \
        or keys[:1]
    held = {r["id"] for r in chosen}
    return html.Div([
        html.H1("Compare runs", className="fw-title"),
        html.P("One chart per metric, every run in its own colour (the same on every page), aligned by step.",
               className="fw-hint"),
        html.Div(className="fw-toolbar", children=[
            html.Div([html.Label("Runs", htmlFor="compare-runs"), dcc.Dropdown(
                id="compare-runs", multi=True, value=[r["id"] for r in chosen], placeholder="pick runs",
                options=[_option(r) for r in chosen] + [_option(r) for r in newest if r["id"] not in held],
            )], className="fw-field", style={"minWidth": "380px", "flex": "1"}),
            html.Div([html.Label("Metrics", htmlFor="compare-metrics"), dcc.Dropdown(
                id="compare-metrics", multi=True, value=wanted, options=keys, placeholder="pick metrics",
            )], className="fw-field", style={"minWidth": "380px", "flex": "1"}),
        ]),
        html.Div(id="compare-link", className="fw-hint", children=_link(ids, wanted)),
        # Charts of the metrics asked for, empty until the first load fills them: the browser
        # fetches and starts Plotly while the server reads the series.
        html.Div(id="compare-graphs", className="fw-grid", children=[
            graph({"type": "compare-graph", "metric": m}, empty_figure(LOADING, height=320)) for m in wanted
        ] if ids else []),
        dcc.Store(id="compare-state"),
        dcc.Interval(id="compare-interval", interval=config().refresh_ms, n_intervals=0),
    ])


@callback(
    Output("compare-runs", "options"),
    Input("compare-runs", "search_value"),
    State("compare-runs", "value"),
    State("compare-runs", "options"),
    prevent_initial_call=True,
)
def search_runs(typed, picked, options):
    """The picker offers the runs matching what is typed (the server filters), and keeps the picked."""
    try:
        found = client().get("/runs", q=(typed or "").strip() or None, limit=OPTION_RUNS)["runs"]
    except ServerError:
        return no_update
    kept = [o for o in options or [] if o["value"] in set(picked or ())]
    held = {o["value"] for o in kept}
    return kept + [_option(r) for r in found if r["id"] not in held]


def _link(run_ids, metrics):
    ids = ",".join(str(i) for i in run_ids or [])
    if not ids:
        return ""
    return dcc.Link("Link to this comparison", href=href(f"compare?runs={ids}&metrics={','.join(metrics or [])}"))


@callback(
    Output("compare-metrics", "options"),
    Output("compare-link", "children"),
    Input("compare-runs", "value"),
    Input("compare-metrics", "value"),
    prevent_initial_call=True,  # the layout made both for the runs and metrics it was given
)
def metric_options(run_ids, metrics):
    try:
        runs = _read(client(), run_ids or [])["runs"]
    except ServerError:
        return no_update, no_update
    return _metric_options(runs), _link(run_ids, metrics)


def _full(api, run_ids, metrics):
    body = _read(api, run_ids, metrics)
    runs = body["runs"]
    per_run = {data["run_id"]: data["series"] for data in body["series"]}
    last = {str(data["run_id"]): data["last_step"] for data in body["series"]}
    graphs = [graph({"type": "compare-graph", "metric": m},
                    compare_figure(m, [(run, per_run[run["id"]].get(m)) for run in runs]))
              for m in metrics]
    points = {str(r["id"]): max((len(p["steps"]) for p in per_run[r["id"]].values()), default=0) for r in runs}
    return graphs, {"runs": run_ids, "metrics": metrics, "last": last, "points": points,
                    "shown": [r["id"] for r in runs]}


@callback(
    Output("compare-graphs", "children"),
    Output({"type": "compare-graph", "metric": ALL}, "figure"),
    Output("compare-state", "data"),
    Input("compare-interval", "n_intervals"),
    Input("compare-runs", "value"),
    Input("compare-metrics", "value"),
    State("compare-state", "data"),
    # The clock stops while a refresh runs: two refreshes on the same held state would append
    # the same points twice.
    running=[(Output("compare-interval", "disabled"), True, False)],
)
def refresh_compare(_n, run_ids, metrics, state):
    held = [o["id"]["metric"] for o in ctx.outputs_list[1]]
    nothing = [no_update] * len(held)
    if not run_ids:
        return empty_state("Pick two or more runs to overlay.", "Or tick them on the runs page."), nothing, None
    if not metrics:
        return empty_state("Pick a metric.", "Any scalar the runs log: reward/mean, entropy/mean, loss, ..."), \
            nothing, None
    api = client()
    try:
        if not state or state["runs"] != run_ids or state["metrics"] != metrics or held != metrics:
            graphs, new_state = _full(api, run_ids, metrics)
            return graphs, nothing, new_state
        patches = {m: dash.Patch() for m in metrics}
        changed = False
        last, points = dict(state["last"]), dict(state["points"])
        shown = state.get("shown", run_ids)
        since = [last.get(str(rid)) for rid in shown]
        body = _read(api, shown, metrics, after=[-1 if s is None else s for s in since])
        if [r["id"] for r in body["runs"]] != shown:  # a run went away: draw again
            graphs, new_state = _full(api, run_ids, metrics)
            return graphs, nothing, new_state
        for i, data in enumerate(body["series"]):
            rid = data["run_id"]
            grown = max((len(p["steps"]) for p in data["series"].values()), default=0)
            if not grown:
                continue
            if data["downsampled"] or points.get(str(rid), 0) + grown > 2 * MAX_POINTS:
                graphs, new_state = _full(api, run_ids, metrics)
                return graphs, nothing, new_state
            for m in metrics:
                p = data["series"].get(m)
                if p and p["steps"]:
                    changed = apply_appends(patches[m], [(i, p["steps"], p["values"])]) or changed
            last[str(rid)] = data["last_step"]
            points[str(rid)] = points.get(str(rid), 0) + grown
    except ServerError as exc:
        return error_state(exc), nothing, None
    if not changed:
        return no_update, nothing, no_update
    return no_update, [patches[m] for m in held], {**state, "last": last, "points": points}
