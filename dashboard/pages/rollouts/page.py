"""The rollout inspector: a step's whole groups side by side, filtered, searched and exported."""

from __future__ import annotations

import importlib.util
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.context import client, href
from fadewatch.dashboard.pages.rollouts import filters as flt
from fadewatch.dashboard.pages.rollouts.cards import group_cards
from fadewatch.dashboard.ui import empty_state, error_state
from fadewatch.errors import ServerError

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
        matrix = client().get(f"/runs/{int(run_id)}/histograms", name="difficulty/groups", max_steps=1)
        labels = matrix.get("labels") or []
    except ServerError:
        labels = []
    return [{"label": "any difficulty", "value": ""}] + [{"label": f"solve rate {x}", "value": x} for x in labels]


def layout(run_id: str | None = None, **query):
    try:
        rid = int(run_id)
    except (TypeError, ValueError):
        return empty_state("No such run.",
                           "The inspector lives at /runs/<id>/rollouts: pick a run from the runs list.")
    api = client()
    try:
        run = api.get(f"/runs/{rid}")
        first = api.get(f"/runs/{rid}/rollouts/steps", limit=1)
        last = api.get(f"/runs/{rid}/rollouts/steps", limit=1, order="desc")["steps"]
    except ServerError as exc:
        return error_state(exc, f"Run #{rid}")
    f = flt.from_query(query)
    lo, hi = (first["steps"][0], last[0]) if last else (0, 0)
    wanted = f.get("step", hi)
    # Filters that came with the link (a heatmap cell, a group, a prompt), each removable.
    chips = [html.Span([f"{name} {f[key]} ", dcc.Link("✕", title="remove", href=href(flt.inspector_path(
        rid, **{**{k: v for k, v in f.items() if k != key}, "step": wanted})))], className="fw-chip")
        for key, name in (("advantage", "advantage in"), ("group", "group"), ("prompt_id", "prompt")) if f.get(key)]
    pyarrow = importlib.util.find_spec("pyarrow") is not None
    return html.Div([
        html.H1(["Rollouts · ", dcc.Link(run["name"], href=href(f"runs/{rid}"))], className="fw-title"),
        html.P("Whole groups kept by the hook: all completions of a prompt, coloured by the sign and size of "
               "their advantage. Most |A| mass first; the rest drawn across signs and difficulty.", className="fw-hint"),
        dcc.Store(id="ro-run", data={"id": rid, "steps": first["total"]}), dcc.Store(id="ro-fixed", data=f),
        dcc.Store(id="ro-cursor"), dcc.Store(id="ro-current"),
        html.Div(className="fw-toolbar", children=[
            html.Button("◀", id="ro-prev", className="fw-button", n_clicks=0, title="previous step with rollouts"),
            # Any step of the run; the nearest one at or before it that holds rollouts is shown.
            html.Div(dcc.Slider(id="ro-step", min=lo, max=max(hi, lo + 1), step=1, value=wanted, marks=None,
                                updatemode="mouseup", allow_direct_input=False),
                     className="fw-slider", style={"flex": "1", "minWidth": "240px"}),
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


def _filters(fixed, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q) -> dict:
    f = {k: v for k, v in (fixed or {}).items() if k in ("advantage", "group", "prompt_id")}
    f.update(scope=scope, sign=sign or None, difficulty=difficulty or None, min_reward=min_reward,
             max_reward=max_reward, min_length=min_length, max_length=max_length, q=(q or "").strip() or None)
    return {k: v for k, v in f.items() if v is not None}


def _links(rid: int):
    def prompt_href(r: dict) -> str:
        return href(flt.inspector_path(rid, prompt_id=r["prompt_id"], scope="run"))

    def group_href(r: dict) -> str:
        return href(flt.inspector_path(rid, step=r["step"], group=r["group"]))
    return prompt_href, group_href


def _resolve(api, rid: int, wanted, current, move: int | None) -> int | None:
    """The step to show: the neighbour of `current` with rollouts (move -1 / +1), else the newest
    step with rollouts at or before `wanted` (the first one after it when there is none)."""
    path = f"/runs/{int(rid)}/rollouts/steps"
    if move and current is not None:
        found = (api.get(path, max_step=current - 1, order="desc", limit=1) if move < 0
                 else api.get(path, min_step=current + 1, limit=1))["steps"]
        return found[0] if found else current
    found = api.get(path, max_step=wanted, order="desc", limit=1)["steps"] if wanted is not None else []
    return found[0] if found else next(iter(api.get(path, min_step=wanted, limit=1)["steps"]), None)


@callback(
    Output("ro-cards", "children"),
    Output("ro-cursor", "data"),
    Output("ro-more-wrap", "style"),
    Output("ro-summary", "children"),
    Output("ro-step-label", "children"),
    Output("ro-export-jsonl", "href"),
    Output("ro-export-parquet", "href"),
    Output("ro-current", "data"),
    Output("ro-step", "value"),
    Input("ro-step", "value"), Input("ro-prev", "n_clicks"), Input("ro-next", "n_clicks"),
    Input("ro-scope", "value"), Input("ro-sign", "value"),
    Input("ro-difficulty", "value"), Input("ro-min-reward", "value"), Input("ro-max-reward", "value"),
    Input("ro-min-length", "value"), Input("ro-max-length", "value"), Input("ro-q", "value"),
    Input("ro-more", "n_clicks"),
    State("ro-run", "data"), State("ro-fixed", "data"), State("ro-cursor", "data"), State("ro-current", "data"),
)
def show(wanted, _prev, _next, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q, _more,
         run, fixed, cursor, current):
    trigger = ctx.triggered_id
    more = trigger == "ro-more"
    move = {"ro-prev": -1, "ro-next": 1}.get(trigger)
    rid, api = run["id"], client()
    f = _filters(fixed, scope, sign, difficulty, min_reward, max_reward, min_length, max_length, q)
    try:
        step = current if more else _resolve(api, rid, wanted, current, move)
        params = flt.api_query(f, step)
        page = None if step is None and scope != "run" else api.get(
            f"/runs/{int(rid)}/rollouts", limit=PAGE_ROLLOUTS, cursor=cursor if more else None, **params)
    except ServerError as exc:
        return (error_state(exc), None, {"display": "none"}, "", "", no_update, no_update, no_update, no_update)
    query = urlencode(params)
    jsonl, parquet = (href(f"export/runs/{int(rid)}/rollouts.{fmt}?") + query for fmt in ("jsonl", "parquet"))
    if scope == "run":
        label = "all steps" + (" of this prompt" if f.get("prompt_id") else "")
    else:
        label = f"step {step:,} · {run['steps']:,} steps hold rollouts" if step is not None else ""
    slider = step if move and step is not None else no_update
    if page is None:
        hint = empty_state("No rollouts logged yet.", "Pass prompts= and completions= to run.log() "
                           "(texts, or token ids with tokenizer=).")
        return hint, None, {"display": "none"}, "", label, jsonl, parquet, step, slider
    cards = group_cards(page["rollouts"], *_links(rid))
    if not cards and not more:
        cards = [empty_state("No rollouts match these filters.",
                             "Clear the sign, difficulty, reward, length or text filter, or pick another step.")]
    shown = f"{page['groups']} group{'s' if page['groups'] != 1 else ''}, {len(page['rollouts'])} rollouts"
    if more:
        patch = dash.Patch()
        patch.extend(cards)
        cards, shown = patch, no_update
    style = {"display": "block"} if page["next_cursor"] else {"display": "none"}
    return cards, page["next_cursor"], style, shown, label, jsonl, parquet, step, slider
