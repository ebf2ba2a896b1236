"""The run page's charts: their first load, in two waves, and their live refreshes.

The first screen (the advantage heatmap, its quantile bands and the newest step's
distribution) is loaded alone, by one callback. Only once it is in does the page load the
rest (every scalar chart in one request, the difficulty and entropy heatmaps): the
dashboard then answers the first screen without sharing its CPU with a dozen charts'
reads, and the browser draws it before it draws them.
"""

from __future__ import annotations

from dash import ALL, Input, Output, State, callback, ctx, html, no_update

from fadewatch.dashboard.context import client
from fadewatch.dashboard.figures.charts import charts_for
from fadewatch.dashboard.figures.histograms import distribution_figure
from fadewatch.dashboard.figures.series import empty_figure
from fadewatch.dashboard.pages.run import loading
from fadewatch.dashboard.pages.run.header import csv_href, meta
from fadewatch.dashboard.pages.run.regime import run_regime
from fadewatch.dashboard.ui import graph
from fadewatch.errors import ServerError

__all__ = ["LIVE_PARTS", "FIRST_SCREEN", "SLOTS", "register"]

LIVE_PARTS = ("series", "adv", "diff", "ent")
FIRST_SCREEN = "run-first-screen"  # a store set once the first screen is loaded: the rest follows
# The scalar charts of each section, in order. Made by the series' full load, with their data:
# a chart drawn empty first ("loading") would cost the browser a Plotly plot of its own.
SLOTS = {
    "advantages": ("adv-moments", "adv-tails"), "sign": ("sign-mass", "sign-balance"), "difficulty": ("difficulty",),
    "entropy": ("entropy", "entropy-seq"), "diversity": ("diversity", "pass"), "geometry": ("geometry", "reward", "length"),
}


def _live(part: str) -> dict:
    """A live section's refresh never overlaps itself: its clock stops while it runs.

    The refresh appends new points to figures the browser holds (Dash Patch); two runs on
    the same held state would append the same points twice. Stopped during the call and
    started again after it, the clock also starts the live updates once the first full load
    is in.
    """
    return {"running": [(Output(f"run-{part}-interval", "disabled"), True, False)]}


def refresh_series(_n, _first_screen, state, run_id):
    """A full load makes the charts, with their data; a refresh patches the charts it made."""
    sections = [o["id"]["section"] for o in ctx.outputs_list[0]]
    chart_ids = [o["id"]["chart"] for o in ctx.outputs_list[1]]
    user_keys = [o["id"]["key"] for o in ctx.outputs_list[2]]
    api = client()
    unchanged = [no_update] * len(sections), [no_update] * len(chart_ids), [no_update] * len(user_keys)
    try:
        run = api.run(run_id)
        regime = run_regime(api, run_id)
        if state and state.get("run_id") == run_id:
            patched = loading.refresh_series(api, run, state, chart_ids, user_keys, regime)
            if patched is not None:
                charts, users, new_state = patched
                return unchanged[0], charts, users, no_update, new_state, meta(run, regime)
        figs, user_figs, new_state = loading.load_series(api, run, (state or {}).get("keys", ()), regime)
    except ServerError:
        return *unchanged, no_update, no_update, no_update
    keys = dict((c.id, [t.key for t in traces]) for c, traces in charts_for(run.get("summary") or {}))
    slots = [[graph({"type": "run-series", "chart": c}, figs[c], csv=csv_href(run_id, keys.get(c, ())))
              for c in SLOTS[s] if c in figs] for s in sections]
    other = [graph({"type": "run-user", "key": k}, f, csv=csv_href(run_id, [k])) for k, f in user_figs.items()] or [
        html.P("No other scalars logged yet: pass them to run.log(step, loss=..., kl=...).", className="fw-hint")]
    return slots, unchanged[1], unchanged[2], other, new_state, meta(run, regime)


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


def _distribution(run_id, step, logged: bool = False) -> dict:
    """The advantage distribution of the newest step at or before `step` that holds one
    (`logged`: `step` is known to hold one)."""
    if step is None:
        return empty_figure("no advantages histogram logged yet", height=280)
    api = client()
    if logged:
        return distribution_figure(api.histograms(run_id, "advantages", max_steps=1, min_step=int(step),
                                                  max_step=int(step)), "advantage A")
    before = api.histograms(run_id, "advantages", max_steps=1, min_step=max(0, int(step) - 1000), max_step=int(step))
    if before["steps"]:
        last = before["steps"][-1]
        before = api.histograms(run_id, "advantages", max_steps=1, min_step=last, max_step=last)
    return distribution_figure(before, "advantage A")


def refresh_advantages(_n, state, run_id, selected, first_screen):
    # Set once, whatever this load brought (an error included): the rest of the page follows.
    ready = no_update if first_screen else True
    heat, bands, new_state, new_steps = _heat("advantages", "advantage A", 4, state, run_id,
                                              bands_title="Advantage quantiles: 5–95%, 25–75%, median, mean")
    if new_state is no_update:
        return heat, bands, new_state, no_update, no_update, no_update, no_update, ready
    if new_steps is None:  # full load: the newest step's distribution comes with it
        last = new_state["last"]
        try:
            dist = _distribution(run_id, last, logged=True)  # the heatmap's newest column ends there
            new_state["dist"] = last
        except ServerError:
            dist = no_update
        if last is None:
            return heat, bands, new_state, 0, 1, None, dist, ready
        return heat, bands, new_state, new_state["first"], last, last, dist, ready
    if not new_steps:
        return heat, bands, new_state, no_update, no_update, no_update, no_update, ready
    following = selected is None or (state and selected >= state["last"])
    return (heat, bands, new_state, no_update, new_steps[-1], new_steps[-1] if following else no_update,
            no_update, ready)


def show_step(step, run_id, adv_state):
    if step is not None and step == (adv_state or {}).get("dist"):
        return no_update  # drawn by the full load that picked this step
    try:
        return _distribution(run_id, step)
    except ServerError:
        return no_update


def refresh_difficulty(_n, mode, _first_screen, state, run_id):
    if state and state.get("mode") != mode:
        state = None
    heat, _bands, new_state, _steps = _heat("difficulty", "group success rate", 4, state, run_id, mode=mode)
    return heat, new_state


def refresh_entropy(_n, _first_screen, state, run_id):
    heat, _bands, new_state, _steps = _heat("entropy", "token entropy (nats)", 4, state, run_id)
    return heat, new_state


def register() -> None:
    """The page's chart callbacks, registered with the app being built: the page module calls this for
    each app (Dash runs page modules once per app, and this module only once)."""
    callback(
        Output({"type": "run-slot", "section": ALL}, "children"),
        Output({"type": "run-series", "chart": ALL}, "figure"),
        Output({"type": "run-user", "key": ALL}, "figure"),
        Output("run-other", "children"),
        Output("run-series-state", "data"),
        Output("run-meta", "children"),
        Input("run-series-interval", "n_intervals"),
        Input(FIRST_SCREEN, "data"),
        State("run-series-state", "data"),
        State("run-id", "data"),
        prevent_initial_call=True,
        **_live("series"),
    )(refresh_series)
    callback(
        Output("run-adv-heatmap", "figure"),
        Output("run-adv-quantiles", "figure"),
        Output("run-adv-state", "data"),
        Output("run-adv-slider", "min"),
        Output("run-adv-slider", "max"),
        Output("run-adv-slider", "value"),
        Output("run-adv-dist", "figure", allow_duplicate=True),
        Output(FIRST_SCREEN, "data"),
        Input("run-adv-interval", "n_intervals"),
        State("run-adv-state", "data"),
        State("run-id", "data"),
        State("run-adv-slider", "value"),
        State(FIRST_SCREEN, "data"),
        prevent_initial_call="initial_duplicate",
        **_live("adv"),
    )(refresh_advantages)
    callback(
        Output("run-adv-dist", "figure"),
        Input("run-adv-slider", "value"),
        State("run-id", "data"),
        State("run-adv-state", "data"),
        prevent_initial_call=True,  # the first load of the advantages draws it
    )(show_step)
    callback(
        Output("run-diff-heatmap", "figure"),
        Output("run-diff-state", "data"),
        Input("run-diff-interval", "n_intervals"),
        Input("run-diff-mode", "value"),
        Input(FIRST_SCREEN, "data"),
        State("run-diff-state", "data"),
        State("run-id", "data"),
        prevent_initial_call=True,
        **_live("diff"),
    )(refresh_difficulty)
    callback(
        Output("run-ent-heatmap", "figure"),
        Output("run-ent-state", "data"),
        Input("run-ent-interval", "n_intervals"),
        Input(FIRST_SCREEN, "data"),
        State("run-ent-state", "data"),
        State("run-id", "data"),
        prevent_initial_call=True,
        **_live("ent"),
    )(refresh_entropy)
