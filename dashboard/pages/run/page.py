"""A run: advantage weights, sign and difficulty axes, entropy, diversity, geometry and every scalar."""

from __future__ import annotations

import json
from urllib.parse import quote

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.pages.rollouts import filters as rollout_filters
from fadewatch.dashboard.pages.rollouts.cards import groups_of, preview
from fadewatch.dashboard.pages.run import loading
from fadewatch.dashboard.pages.run.regime import regime_badge, run_regime
from fadewatch.errors import ServerError
from fadewatch.dashboard.figures.charts import charts_for
from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import empty_figure
from fadewatch.dashboard.figures.histograms import distribution_figure
from fadewatch.dashboard.figures.theme import run_color
from fadewatch.dashboard.ui import badge, empty_state, error_state, fmt_age, graph, section

dash.register_page(__name__, path_template="/runs/<run_id>", name="Run", title="fadewatch · run")

LOADING = "loading…"
LIVE_PARTS = ("series", "adv", "diff", "ent")


def _live(part: str) -> dict:
    """A live section's refresh never overlaps itself: its clock stops while it runs.

    The refresh appends new points to figures the browser holds (Dash Patch); two runs on
    the same held state would append the same points twice. Stopped during the call and
    started again after it, the clock also starts the live updates once the first full load
    is in.
    """
    return {"running": [(Output(f"run-{part}-interval", "disabled"), True, False)]}


def _csv(run_id: int, keys) -> str:
    return href(f"export/runs/{int(run_id)}.csv?keys=" + quote(",".join(keys), safe=",/@:"))


def _series(run: dict, chart_id: str, wide: bool = False) -> html.Div:
    traces = dict((c.id, t) for c, t in charts_for(run.get("summary") or {}))[chart_id]
    return graph({"type": "run-series", "chart": chart_id}, empty_figure(LOADING), wide=wide,
                 csv=_csv(run["id"], [t.key for t in traces]))


def _header(run: dict) -> html.Div:
    rid = run["id"]
    return html.Div([
        html.H1([html.Span(className="fw-swatch", style={"background": run_color(rid)}), run["name"]],
                className="fw-title", id="run-name"),
        html.Div(id="run-meta", className="fw-meta", children=_meta(run)),
        html.Div(className="fw-toolbar", children=[
            dcc.Link("Compare with other runs", href=href(f"compare?runs={rid}")),
            html.A("Download all scalars (CSV)", href=href(f"export/runs/{rid}.csv"), download=f"run-{rid}.csv"),
            html.A("Static report (HTML)", href=href(f"export/runs/{rid}/report.html"),
                   download=f"run-{rid}.html"),
        ]),
    ])


def _meta(run: dict, regime: dict | None = None) -> list:
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


def layout(run_id: str | None = None, **_query):
    try:
        rid = int(run_id)
    except (TypeError, ValueError):
        return empty_state("No such run.", "Run pages live at /runs/<id>: pick one from the runs list.")
    try:
        run = client().run(rid)
    except ServerError as exc:
        return error_state(exc, f"Run #{rid}")
    refresh = config().refresh_ms
    return html.Div([
        _header(run),
        dcc.Store(id="run-id", data=rid),
        dcc.Store(id="run-series-state"), dcc.Store(id="run-adv-state"), dcc.Store(id="run-ent-state"),
        dcc.Store(id="run-diff-state"),
        # A click on a heatmap cell opens the rollout inspector there, without reloading the app.
        dcc.Location(id="run-nav", refresh="callback-nav"),
        # One clock per live section, off while its refresh runs (see _live): a tick during a slow
        # refresh would start a second one on the same held state, and both would append.
        *[dcc.Interval(id=f"run-{part}-interval", interval=refresh, n_intervals=0, disabled=True)
          for part in LIVE_PARTS],
        section("Advantage weights", "How each step's advantages A_i are distributed: the histogram over steps "
                "(colour: share of rollouts per bin), its quantile bands, one step's shape, and the tails.",
                html.Div(className="fw-grid", children=[
                    graph("run-adv-heatmap", empty_figure(LOADING), wide=True),
                    graph("run-adv-quantiles", empty_figure(LOADING)),
                    html.Div(className="fw-card", children=[
                        dcc.Graph(id="run-adv-dist", figure=empty_figure(LOADING), config={"displaylogo": False}),
                        html.Div(dcc.Slider(id="run-adv-slider", min=0, max=1, step=1, value=None, marks=None),
                                 className="fw-slider", title="Pick a step; at the right end it follows the newest"),
                    ]),
                    _series(run, "adv-moments"), _series(run, "adv-tails"),
                ]), anchor="advantages"),
        section("Sign axis", "Positive mass m_S pushes successes up, negative mass m_F pushes failures down. "
                "Success-heavy balance (b > 0) collapses entropy; failure-heavy (b < 0) collapses weight geometry.",
                html.Div(className="fw-grid", children=[_series(run, "sign-mass"), _series(run, "sign-balance")]),
                anchor="sign"),
        section("Difficulty axis", "Where the update's mass sits across prompt difficulty (group success rate).",
                dcc.RadioItems(id="run-diff-mode", value="total", inline=True, className="fw-toolbar",
                               options=[{"label": " m_S + m_F", "value": "total"}, {"label": " m_S", "value": "pos"},
                                        {"label": " m_F", "value": "neg"}, {"label": " groups", "value": "groups"}]),
                html.Div(className="fw-grid", children=[graph("run-diff-heatmap", empty_figure(LOADING)),
                                                         _series(run, "difficulty")]), anchor="difficulty"),
        section("Entropy", "Mean token entropy with Cov(log π, A). The dashed line is the server's entropy "
                "forecast (the early-warning rule's own): where it meets 30% of the early level, with its "
                "interval on that level. Bands behind the charts mark success-heavy (green) and failure-heavy "
                "(orange) sign regimes.",
                html.Div(className="fw-grid", children=[_series(run, "entropy"), _series(run, "entropy-seq"),
                                                         graph("run-ent-heatmap", empty_figure(LOADING), wide=True)]),
                anchor="entropy"),
        section("Diversity", "Distinct completions and n-grams within groups, and pass@k: a shrinking gap "
                "between pass@G and pass@1 is diversity collapse.",
                html.Div(className="fw-grid", children=[_series(run, "diversity"), _series(run, "pass")]), anchor="diversity"),
        section("Weight geometry, reward, length", None,
                html.Div(className="fw-grid", children=[_series(run, "geometry"), _series(run, "reward"), _series(run, "length")]),
                anchor="geometry"),
        section("Other scalars", "Loss, KL and every other scalar the run logs.",
                html.Div(id="run-other", className="fw-grid small"), anchor="scalars"),
        section("Config", None, html.Pre(json.dumps(run.get("config") or {}, indent=2, sort_keys=True,
                                                    default=str), className="fw-pre", id="run-config")),
        section("Rollouts", "Whole groups of rollouts the hook kept at the step picked under the advantage "
                "distribution (the newest, unless you move the slider). Click a cell of the advantage or "
                "difficulty heatmap to inspect that step's rollouts of that bin.",
                html.Div(id="run-rollouts"), anchor="rollouts"),
    ])


@callback(Output("run-rollouts", "children"), Input("run-adv-slider", "value"), State("run-id", "data"))
def show_rollouts(step, run_id):
    try:
        page = client().get(f"/runs/{int(run_id)}/rollouts", max_step=step, limit=16)
    except ServerError as exc:
        return error_state(exc)
    if not page["rollouts"]:
        return html.P(["No rollouts logged yet: pass prompts= and completions= to run.log() (texts, or token "
                       "ids with tokenizer=). ", dcc.Link("Open the rollout inspector",
                                                         href=href(f"runs/{int(run_id)}/rollouts"))],
                      className="fw-hint")
    at = page["rollouts"][0]["step"]
    shown = [r for group in groups_of(page["rollouts"]) if group[0]["step"] == at for r in group]
    link = dcc.Link(f"Open the rollout inspector at step {at:,} →", id="run-rollouts-link",
                    href=href(rollout_filters.inspector_path(run_id, step=at)))
    return html.Div([html.Div(link, className="fw-toolbar"), *preview(shown)])


@callback(
    Output("run-nav", "href"),
    Input("run-adv-heatmap", "clickData"),
    Input("run-diff-heatmap", "clickData"),
    State("run-id", "data"),
    prevent_initial_call=True,
)
def open_inspector(adv_click, diff_click, run_id):
    """A heatmap cell: its column's step, filtered to its bin (an advantage range or a difficulty bin)."""
    click = adv_click if ctx.triggered_id == "run-adv-heatmap" else diff_click
    point = (click or {}).get("points", [{}])[0]
    if point.get("curveNumber") != 1 or point.get("x") is None:
        return no_update  # the alert markers' trace, or no cell
    step = int(point["x"])
    if ctx.triggered_id == "run-diff-heatmap":
        return href(rollout_filters.inspector_path(run_id, step=step, difficulty=point.get("y")))
    try:
        edges = client().get(f"/runs/{int(run_id)}/histograms", name="advantages", max_steps=1,
                             min_step=step, max_step=step)["edges"]
    except (ServerError, KeyError):
        edges = []
    advantage = rollout_filters.bin_of(edges, float(point["y"])) if edges else None
    return href(rollout_filters.inspector_path(run_id, step=step, advantage=advantage))


@callback(
    Output({"type": "run-series", "chart": ALL}, "figure"),
    Output({"type": "run-user", "key": ALL}, "figure"),
    Output("run-other", "children"),
    Output("run-series-state", "data"),
    Output("run-meta", "children"),
    Input("run-series-interval", "n_intervals"),
    State("run-series-state", "data"),
    State("run-id", "data"),
    **_live("series"),
)
def refresh_series(_n, state, run_id):
    chart_ids = [o["id"]["chart"] for o in ctx.outputs_list[0]]
    user_keys = [o["id"]["key"] for o in ctx.outputs_list[1]]
    api = client()
    try:
        run = api.run(run_id)
        regime = run_regime(api, run_id)
        if state and state.get("run_id") == run_id:
            patched = loading.refresh_series(api, run, state, chart_ids, user_keys, regime)
            if patched is not None:
                charts, users, new_state = patched
                return charts, users, no_update, new_state, _meta(run, regime)
        figs, user_figs, new_state = loading.load_series(api, run, (state or {}).get("keys", ()), regime)
    except ServerError:
        return [no_update] * len(chart_ids), [no_update] * len(user_keys), no_update, no_update, no_update
    other = [graph({"type": "run-user", "key": k}, f, csv=_csv(run_id, [k])) for k, f in user_figs.items()] or [
        html.P("No other scalars logged yet: pass them to run.log(step, loss=..., kl=...).", className="fw-hint")]
    return ([figs.get(c, no_update) for c in chart_ids], [no_update] * len(user_keys), other, new_state,
            _meta(run, regime))


def _heat(kind: str, y_title: str, n_outputs: int, state, run_id, mode=None, bands_title=None):
    api = client()
    forced = ctx.triggered_id == "run-diff-mode"
    try:
        if state and state.get("run_id") == run_id and not forced:
            patched = loading.refresh_heat(api, state, with_bands=bands_title is not None)
            if patched is not None:
                return patched
        heat, bands, new_state = loading.load_heat(api, run_id, kind, y_title, mode, bands_title)
    except ServerError:
        return (no_update,) * n_outputs
    return heat, bands if bands is not None else no_update, new_state, None


@callback(
    Output("run-adv-heatmap", "figure"),
    Output("run-adv-quantiles", "figure"),
    Output("run-adv-state", "data"),
    Output("run-adv-slider", "min"),
    Output("run-adv-slider", "max"),
    Output("run-adv-slider", "value"),
    Input("run-adv-interval", "n_intervals"),
    State("run-adv-state", "data"),
    State("run-id", "data"),
    State("run-adv-slider", "value"),
    **_live("adv"),
)
def refresh_advantages(_n, state, run_id, selected):
    heat, bands, new_state, new_steps = _heat("advantages", "advantage A", 4, state, run_id,
                                              bands_title="Advantage quantiles: 5–95%, 25–75%, median, mean")
    if new_state is no_update:
        return heat, bands, new_state, no_update, no_update, no_update
    if new_steps is None:  # full load
        if new_state["last"] is None:
            return heat, bands, new_state, 0, 1, None
        return heat, bands, new_state, new_state["first"], new_state["last"], new_state["last"]
    if not new_steps:
        return heat, bands, new_state, no_update, no_update, no_update
    following = selected is None or (state and selected >= state["last"])
    return heat, bands, new_state, no_update, new_steps[-1], new_steps[-1] if following else no_update


@callback(
    Output("run-adv-dist", "figure"),
    Input("run-adv-slider", "value"),
    State("run-id", "data"),
)
def show_step(step, run_id):
    if step is None:
        return empty_figure("no advantages histogram logged yet", height=280)
    api = client()
    try:
        # The newest step at or before the chosen one that holds a histogram.
        before = api.histograms(run_id, "advantages", max_steps=1, min_step=max(0, int(step) - 1000),
                                max_step=int(step))
        if before["steps"]:
            last = before["steps"][-1]
            before = api.histograms(run_id, "advantages", max_steps=1, min_step=last, max_step=last)
    except ServerError:
        return no_update
    return distribution_figure(before, "advantage A")


@callback(
    Output("run-diff-heatmap", "figure"),
    Output("run-diff-state", "data"),
    Input("run-diff-interval", "n_intervals"),
    Input("run-diff-mode", "value"),
    State("run-diff-state", "data"),
    State("run-id", "data"),
    **_live("diff"),
)
def refresh_difficulty(_n, mode, state, run_id):
    if state and state.get("mode") != mode:
        state = None
    heat, _bands, new_state, _steps = _heat("difficulty", "group success rate", 4, state, run_id, mode=mode)
    return heat, new_state


@callback(
    Output("run-ent-heatmap", "figure"),
    Output("run-ent-state", "data"),
    Input("run-ent-interval", "n_intervals"),
    State("run-ent-state", "data"),
    State("run-id", "data"),
    **_live("ent"),
)
def refresh_entropy(_n, state, run_id):
    heat, _bands, new_state, _steps = _heat("entropy", "token entropy (nats)", 4, state, run_id)
    return heat, new_state

