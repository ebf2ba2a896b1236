"""The rollout inspector: a step's whole groups side by side, filtered, searched and exported."""

from __future__ import annotations

import importlib.util
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.api import ApiError
from fadewatch.dashboard.context import client, href
from fadewatch.dashboard.pages.rollouts import filters as flt
from fadewatch.dashboard.pages.rollouts.cards import group_cards
from fadewatch.dashboard.ui import empty_state, error_state

# Ordered, so "/runs/<id>/rollouts" is matched before the run page's "/runs/<id>".
dash.register_page(__name__, path_template="/runs/<run_id>/rollouts", name="Rollouts",
                   title="fadewatch · rollouts", order=3)

PAGE_ROLLOUTS = 64  # rollouts per page of cards; "More" fetches the next


def _number_input(id_: str, placeholder: str, value) -> dcc.Input:
    return dcc.Input(id=id_, type="number", placeholder=placeholder, value=value, debounce=True,
                     style={"width": "90px"})


def _difficulty_options(run_id: int) -> list[dict]:
    """The difficulty bins of this run's hook, read from its difficulty histogram's labels."""
    try:
        labels = client().get(f"/runs/{int(run_id)}/histograms", name="difficulty/groups", max_steps=1).get("labels") or []
    except ApiError:
        labels = []
    return [{"label": "any difficulty", "value": ""}] + [{"label": f"solve rate {x}", "value": x} for x in labels]


def layout(run_id: str | None = None, **query):
    try:
        rid = int(run_id)
    except (TypeError, ValueError):
        return empty_state("No such run.", "The inspector lives at /runs/<id>/rollouts: pick a run from the runs list.")
    api = client()
    try:
        run = api.get(f"/runs/{rid}")
        steps = api.get(f"/runs/{rid}/rollouts/steps")["steps"]
    except ApiError as exc:
        return error_state(exc, f"Run #{rid}")
    f = flt.from_query(query)
    index = flt.pick_step(steps, f.get("step"))
    chips = [html.Span([f"{name} {f[key]} ", dcc.Link("✕", href=href(flt.inspector_path(
        rid, **{**{k: v for k, v in f.items() if k != key}, "step": _step_at(steps, index)})), title="remove")],
        className="fw-chip") for key, name in (("advantage", "advantage in"), ("group", "group"),
                                                ("prompt_id", "prompt"), ("q", "text"))
        if f.get(key) and key != "q"]
    pyarrow = importlib.util.find_spec("pyarrow") is not None
    return html.Div([
        html.H1(["Rollouts · ", dcc.Link(run["name"], href=href(f"runs/{rid}"))], className="fw-title"),
        html.P("Whole groups kept by the hook: all completions of a prompt, coloured by the sign and size of "
               "their advantage. Most |A| mass first; the rest drawn across signs and difficulty.", className="fw-hint"),
        dcc.Store(id="ro-run", data=rid), dcc.Store(id="ro-steps", data=steps), dcc.Store(id="ro-fixed", data=f),
        dcc.Store(id="ro-cursor"),
        html.Div(className="fw-toolbar", children=[
            html.Button("◀", id="ro-prev", className="fw-button", n_clicks=0, title="previous step with rollouts"),
            html.Div(dcc.Slider(id="ro-step", min=0, max=max(len(steps) - 1, 0), step=1, value=index, marks=None,
                                updatemode="mouseup", allow_direct_input=False), className="fw-slider", style={"flex": "1", "minWidth": "240px"}),
            html.Button("▶", id="ro-next", className="fw-button", n_clicks=0, title="next step with rollouts"),
            html.Span(id="ro-step-label", className="fw-meta"),
        ]),
        html.Div(className="fw-toolbar", children=[
            dcc.RadioItems(id="ro-scope", value=f["scope"], inline=True, options=[
                {"label": " this step", "value": "step"}, {"label": " all steps", "value": "run"}]),
            dcc.Dropdown(id="ro-sign", options=flt.SIGN_OPTIONS, value=f.get("sign", ""), clearable=False,
                         style={"minWidth": "180px"}),
            dcc.Dropdown(id="ro-difficulty", options=_difficulty_options(rid), value=f.get("difficulty", ""),
                         clearable=False, style={"minWidth": "200px"}),
            html.Span("reward", className="fw-muted"),
            _number_input("ro-min-reward", "min", f.get("min_reward")),
            _number_input("ro-max-reward", "max", f.get("max_reward")),
            html.Span("length", className="fw-muted"),
            _number_input("ro-min-length", "min", f.get("min_length")),
            _number_input("ro-max-length", "max", f.get("max_length")),
            dcc.Input(id="ro-q", type="search", placeholder="text in prompt or completion", value=f.get("q", ""),
                      debounce=True, style={"minWidth": "240px"}),
        ]),
        html.Div(className="fw-toolbar", children=[
            *chips,
            html.A("Export JSONL", id="ro-export-jsonl", download=f"run-{rid}-rollouts.jsonl"),
            # Parquet needs pyarrow on the dashboard's side; without it the link stays hidden.
            html.A("Export Parquet", id="ro-export-parquet", download=f"run-{rid}-rollouts.parquet",
                   style=None if pyarrow else {"display": "none"}),
            html.Span(id="ro-summary", className="fw-meta"),
        ]),
        html.Div(id="ro-cards", className="fw-group-grid"),
        html.Div(html.Button("More", id="ro-more", className="fw-button", n_clicks=0), id="ro-more-wrap",
                 style={"display": "none"}),
    ])


def _step_at(steps: list[int], index) -> int | None:
    return steps[index] if steps and isinstance(index, int) and 0 <= index < len(steps) else None


def _filters(fixed, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q) -> dict:
    f = {k: v for k, v in (fixed or {}).items() if k in ("advantage", "group", "prompt_id")}
    f.update(scope=scope, sign=sign or None, difficulty=difficulty or None, min_reward=min_reward,
             max_reward=max_reward, min_length=min_length, max_length=max_length, q=(q or "").strip() or None)
    return {k: v for k, v in f.items() if v is not None}


def _links(rid: int, step: int | None):
    def prompt_href(r: dict) -> str:
        return href(flt.inspector_path(rid, prompt_id=r["prompt_id"], scope="run"))

    def group_href(r: dict) -> str:
        return href(flt.inspector_path(rid, step=r["step"], group=r["group"]))
    return prompt_href, group_href


@callback(Output("ro-step", "value"), Input("ro-prev", "n_clicks"), Input("ro-next", "n_clicks"),
          State("ro-step", "value"), State("ro-steps", "data"), prevent_initial_call=True)
def move_step(_prev, _next, index, steps):
    if not steps:
        return no_update
    index = 0 if index is None else index
    index += -1 if ctx.triggered_id == "ro-prev" else 1
    return min(max(index, 0), len(steps) - 1)


@callback(
    Output("ro-cards", "children"),
    Output("ro-cursor", "data"),
    Output("ro-more-wrap", "style"),
    Output("ro-summary", "children"),
    Output("ro-step-label", "children"),
    Output("ro-export-jsonl", "href"),
    Output("ro-export-parquet", "href"),
    Input("ro-step", "value"), Input("ro-scope", "value"), Input("ro-sign", "value"),
    Input("ro-difficulty", "value"), Input("ro-min-reward", "value"), Input("ro-max-reward", "value"),
    Input("ro-min-length", "value"), Input("ro-max-length", "value"), Input("ro-q", "value"),
    Input("ro-more", "n_clicks"),
    State("ro-run", "data"), State("ro-steps", "data"), State("ro-fixed", "data"), State("ro-cursor", "data"),
)
def show(index, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q, _more, rid, steps,
         fixed, cursor):
    more = ctx.triggered_id == "ro-more"
    f = _filters(fixed, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q)
    step = _step_at(steps, index)
    params = flt.api_query(f, step)
    label = (f"step {step:,} · {index + 1:,} of {len(steps):,} steps with rollouts" if step is not None
             else "no rollouts logged yet")
    if scope == "run":
        label = "all steps" + (" of this prompt" if f.get("prompt_id") else "")
    query = urlencode(params)
    jsonl, parquet = (href(f"export/runs/{int(rid)}/rollouts.{fmt}?") + query for fmt in ("jsonl", "parquet"))
    if step is None and scope != "run":
        hint = empty_state("No rollouts logged yet.", "Pass prompts= and completions= to run.log() "
                           "(texts, or token ids with tokenizer=).")
        return hint, None, {"display": "none"}, "", label, jsonl, parquet
    try:
        page = client().get(f"/runs/{int(rid)}/rollouts", limit=PAGE_ROLLOUTS,
                            cursor=cursor if more else None, **params)
    except ApiError as exc:
        return error_state(exc), None, {"display": "none"}, "", label, no_update, no_update
    cards = group_cards(page["rollouts"], *_links(rid, step))
    if not cards and not more:
        cards = [empty_state("No rollouts match these filters.",
                             "Clear the sign, difficulty, reward, length or text filter, or pick another step.")]
    shown = f"{page['groups']} group{'s' if page['groups'] != 1 else ''}, {len(page['rollouts'])} rollouts"
    if more:
        patch = dash.Patch()
        patch.extend(cards)
        cards, shown = patch, no_update
    style = {"display": "block"} if page["next_cursor"] else {"display": "none"}
    return cards, page["next_cursor"], style, shown, label, jsonl, parquet
