"""Compare: any metric of several runs overlaid, aligned by step, live."""

from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import compare_figure
from fadewatch.dashboard.figures.live import apply_appends
from fadewatch.dashboard.ui import empty_state, error_state, graph
from fadewatch.errors import ServerError
from fadewatch.protocol.metrics import DIFFICULTY_PEAK, ENTROPY_MEAN, REWARD_MEAN, SIGN_BALANCE

dash.register_page(__name__, path="/compare", name="Compare", title="fadewatch · compare", order=1)

DEFAULT_METRICS = (REWARD_MEAN, ENTROPY_MEAN, SIGN_BALANCE, DIFFICULTY_PEAK)
MAX_POINTS = 1000


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


def layout(runs: str | None = None, metrics: str | None = None, **_query):
    ids = parse_ids(runs)
    try:
        every = client().runs(limit=5000)
    except ServerError as exc:
        return error_state(exc)
    by_id = {r["id"]: r for r in every}
    chosen = [by_id[i] for i in ids if i in by_id]  # in the order the link gives
    keys = _metric_options(chosen)
    wanted = [m for m in (metrics or "").split(",") if m in keys] or [m for m in DEFAULT_METRICS if m in keys] \
        or keys[:1]
    return html.Div([
        html.H1("Compare runs", className="fw-title"),
        html.P("One chart per metric, every run in its own colour (the same on every page), aligned by step.",
               className="fw-hint"),
        html.Div(className="fw-toolbar", children=[
            html.Div([html.Label("Runs", htmlFor="compare-runs"), dcc.Dropdown(
                id="compare-runs", multi=True, value=[r["id"] for r in chosen], placeholder="pick runs",
                options=[{"label": f"{r['name']} (#{r['id']}, {r['project']})", "value": r["id"]} for r in every],
            )], className="fw-field", style={"minWidth": "380px", "flex": "1"}),
            html.Div([html.Label("Metrics", htmlFor="compare-metrics"), dcc.Dropdown(
                id="compare-metrics", multi=True, value=wanted, options=keys, placeholder="pick metrics",
            )], className="fw-field", style={"minWidth": "380px", "flex": "1"}),
        ]),
        html.Div(id="compare-link", className="fw-hint"),
        html.Div(id="compare-graphs", className="fw-grid"),
        dcc.Store(id="compare-state"),
        dcc.Interval(id="compare-interval", interval=config().refresh_ms, n_intervals=0),
    ])


@callback(
    Output("compare-metrics", "options"),
    Output("compare-link", "children"),
    Input("compare-runs", "value"),
    Input("compare-metrics", "value"),
)
def metric_options(run_ids, metrics):
    try:
        runs = [r for r in client().runs(limit=5000) if r["id"] in (run_ids or [])]
    except ServerError:
        return no_update, no_update
    ids = ",".join(str(i) for i in run_ids or [])
    link = dcc.Link("Link to this comparison", href=href(f"compare?runs={ids}&metrics={','.join(metrics or [])}"))
    return _metric_options(runs), link if ids else ""


def _full(api, run_ids, metrics):
    runs = [api.run(i) for i in run_ids]
    last = {}
    per_run = {}
    for run in runs:
        data = api.series(run["id"], metrics, max_points=MAX_POINTS)
        per_run[run["id"]] = data["series"]
        last[str(run["id"])] = data["last_step"]
    graphs = [graph({"type": "compare-graph", "metric": m},
                    compare_figure(m, [(run, per_run[run["id"]].get(m)) for run in runs]))
              for m in metrics]
    points = {str(r["id"]): max((len(p["steps"]) for p in per_run[r["id"]].values()), default=0) for r in runs}
    return graphs, {"runs": run_ids, "metrics": metrics, "last": last, "points": points}


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
        for i, rid in enumerate(run_ids):
            run = api.run(rid)
            since = last.get(str(rid))
            if run["last_step"] is None or (since is not None and run["last_step"] <= since):
                continue
            data = api.series(rid, metrics, max_points=MAX_POINTS, min_step=None if since is None else since + 1)
            grown = max((len(p["steps"]) for p in data["series"].values()), default=0)
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
