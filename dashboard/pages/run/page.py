"""A run: advantage weights, sign and difficulty axes, entropy, diversity, geometry and every scalar."""

from __future__ import annotations

import json

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.context import client, config, href
from fadewatch.dashboard.figures.series import empty_figure
from fadewatch.dashboard.pages.rollouts import filters as rollout_filters
from fadewatch.dashboard.pages.rollouts.cards import groups_of, preview
from fadewatch.dashboard.pages.run import live
from fadewatch.dashboard.pages.run.header import header
from fadewatch.dashboard.pages.run.live import FIRST_SCREEN, LIVE_PARTS, SLOTS
from fadewatch.dashboard.ui import LOADING, empty_state, error_state, graph, section
from fadewatch.errors import ServerError

dash.register_page(__name__, path_template="/runs/<run_id>", name="Run", title="fadewatch · run")
live.register()  # the charts' callbacks


def _slot(section_id: str) -> html.Div:
    """Where a section's scalar charts go once the first screen is in (cards of their size till then)."""
    return html.Div(id={"type": "run-slot", "section": section_id}, className="fw-slot",
                    children=[html.Div(LOADING, className="fw-card fw-pending") for _ in SLOTS[section_id]])


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
        header(run),
        dcc.Store(id="run-id", data=rid), dcc.Store(id=FIRST_SCREEN),
        dcc.Store(id="run-series-state"), dcc.Store(id="run-adv-state"), dcc.Store(id="run-ent-state"),
        dcc.Store(id="run-diff-state"),
        # A click on a heatmap cell opens the rollout inspector there, without reloading the app.
        dcc.Location(id="run-nav", refresh="callback-nav"),
        # One clock per live section, off while its refresh runs (live.py): a tick during a slow
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
                    _slot("advantages"),
                ]), anchor="advantages"),
        section("Sign axis", "Positive mass m_S pushes successes up, negative mass m_F pushes failures down. "
                "Success-heavy balance (b > 0) collapses entropy; failure-heavy (b < 0) collapses weight geometry.",
                html.Div(className="fw-grid", children=[_slot("sign")]),
                anchor="sign"),
        section("Difficulty axis", "Where the update's mass sits across prompt difficulty (group success rate).",
                dcc.RadioItems(id="run-diff-mode", value="total", inline=True, className="fw-toolbar",
                               options=[{"label": " m_S + m_F", "value": "total"}, {"label": " m_S", "value": "pos"},
                                        {"label": " m_F", "value": "neg"}, {"label": " groups", "value": "groups"}]),
                html.Div(className="fw-grid", children=[graph("run-diff-heatmap", empty_figure(LOADING)),
                                                         _slot("difficulty")]), anchor="difficulty"),
        section("Entropy", "Mean token entropy with Cov(log π, A). The dashed line is the server's entropy "
                "forecast (the early-warning rule's own): where it meets 30% of the early level, with its "
                "interval on that level. Bands behind the charts mark success-heavy (green) and failure-heavy "
                "(orange) sign regimes.",
                html.Div(className="fw-grid", children=[_slot("entropy"),
                                                         graph("run-ent-heatmap", empty_figure(LOADING), wide=True)]),
                anchor="entropy"),
        section("Diversity", "Distinct completions and n-grams within groups, and pass@k: a shrinking gap "
                "between pass@G and pass@1 is diversity collapse.",
                html.Div(className="fw-grid", children=[_slot("diversity")]), anchor="diversity"),
        section("Weight geometry, reward, length", None,
                html.Div(className="fw-grid", children=[_slot("geometry")]),
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
