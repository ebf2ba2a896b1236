"""What the run page computes between the API and its figures: full loads and live patches.

Kept apart from the page module so the page holds layout and callbacks only; everything
here takes a read client and plain data and returns figures, patches and page state.
"""

from __future__ import annotations

from dash import Patch, no_update

from fadewatch.dashboard.pages.run import markers
from fadewatch.dashboard.pages.run.regime import bands_signature, regime_shapes
from fadewatch.dashboard.figures.charts import HISTOGRAMS, chart_keys, charts_for, other_keys, pass_keys, user_chart
from fadewatch.dashboard.figures.series import interval_trace, projection_trace, rounded, series_figure
from fadewatch.errors import ServerError
from fadewatch.protocol import metrics as m
from fadewatch.dashboard.figures.histograms import (
    QUANTILE_TRACES,
    column_shares,
    heatmap_figure,
    is_empty,
    occupied_range,
    quantile_figure,
)
from fadewatch.dashboard.figures.live import (
    apply_alerts,
    apply_appends,
    count_points,
    heat_signature,
    new_alerts,
    series_appends,
)

__all__ = ["MAX_POINTS", "MAX_COLUMNS", "load_series", "refresh_series", "load_heat", "refresh_heat",
           "DIFFICULTY_MODES", "heat_names"]

MAX_POINTS = 500         # points per series in a full load: about one per pixel of a chart
MAX_COLUMNS = 200        # heatmap columns in a full load

DIFFICULTY_MODES = {
    "total": ("Mass per success-rate bin (m_S + m_F)", [HISTOGRAMS["mass_pos"], HISTOGRAMS["mass_neg"]]),
    "pos": ("Positive mass m_S per success-rate bin", [HISTOGRAMS["mass_pos"]]),
    "neg": ("Negative mass m_F per success-rate bin", [HISTOGRAMS["mass_neg"]]),
    "groups": ("Groups per success-rate bin", [HISTOGRAMS["groups"]]),
}


def _wanted(keys) -> list[str]:
    return list(dict.fromkeys([*chart_keys(), *pass_keys(keys), *other_keys(keys)]))


def forecast(api, run_id: int) -> dict | None:
    """The server's entropy forecast: the early-warning rule's own reading of the run."""
    try:
        return api.get(f"/runs/{int(run_id)}/forecast")
    except ServerError:
        return None


def load_series(api, run: dict, known_keys=(), regime: dict | None = None) -> tuple[dict, dict, dict]:
    """Full figures of every scalar chart: ({chart id: figure}, {user key: figure}, state).

    ``regime``: the server's regimes of the run (GET /runs/{id}/regime), drawn as bands behind
    the charts."""
    keys = sorted(set(run.get("summary") or {}) | set(known_keys))
    data = api.series(run["id"], _wanted(keys), max_points=MAX_POINTS)
    series, down = data["series"], data["downsampled"]
    alerts = markers.run_markers(api, run["id"])
    bands = regime_shapes(regime, data["last_step"])
    figs, maps = {}, {}
    for chart, traces in charts_for(keys):
        fig, tmap = series_figure(chart, traces, series, down, alerts)
        fig["layout"]["shapes"] = bands + fig["layout"]["shapes"]
        if chart.id == "entropy":
            f = forecast(api, run["id"])
            fig["data"] += [projection_trace(f), interval_trace(f)]
            fig["layout"]["margin"]["t"] += 20  # the projection's legend entry takes a second row
            tmap += [["", "projection"], ["", "interval"]]
        figs[chart.id], maps[chart.id] = fig, tmap
    users = {}
    for key in other_keys(keys):
        fig, tmap = series_figure(user_chart(key), user_chart(key).traces, series, down, alerts, height=220)
        users[key], maps[f"user:{key}"] = fig, tmap
    state = {
        "run_id": run["id"], "last": data["last_step"], "points": count_points(series), "keys": keys,
        "users": other_keys(keys), "passk": pass_keys(keys), "maps": maps,
        "alerts": [a["id"] for a in alerts],
        "y2": [cid for cid, fig in figs.items() if "yaxis2" in fig["layout"]],
        "bands": bands_signature(regime),
        "open_band": len(bands) - 1 if bands and data["last_step"] is not None and _open(regime) else None,
    }
    return figs, users, state


def _open(regime: dict | None) -> bool:
    """The run's newest regime span has a band and is still open: the band grows with the run."""
    spans = (regime or {}).get("spans") or []
    return bool(spans) and spans[-1].get("end") is None and spans[-1].get("sign") in ("success-heavy", "failure-heavy")


def refresh_series(api, run: dict, state: dict, chart_ids: list[str], user_keys: list[str],
                   regime: dict | None = None):
    """Patches for the held charts, or None when the page must load in full instead (a regime
    changed: its bands are drawn again)."""
    keys = sorted(set(run.get("summary") or {}) | set(state["keys"]))
    if other_keys(keys) != state["users"] or pass_keys(keys) != state["passk"]:
        return None
    if regime is not None and bands_signature(regime) != state.get("bands", []):
        return None
    if state["last"] is not None and run.get("last_step") is not None and run["last_step"] <= state["last"]:
        new_series, last = {}, state["last"]
    else:
        min_step = None if state["last"] is None else state["last"] + 1
        data = api.series(run["id"], _wanted(keys), max_points=MAX_POINTS, min_step=min_step)
        if data["downsampled"]:
            return None
        new_series, last = data["series"], data["last_step"]
    added = count_points(new_series)
    if state["points"] + added > 2 * MAX_POINTS:
        return None
    alerts = new_alerts(markers.run_markers(api, run["id"], state["alerts"]), state["alerts"])
    if not added and not alerts:
        return [no_update] * len(chart_ids), [no_update] * len(user_keys), no_update

    def patch_for(map_id: str):
        tmap = state["maps"].get(map_id)
        if tmap is None:
            return no_update
        patch = Patch()
        appends = series_appends(tmap, new_series)
        lines = [i for i, (_, role) in enumerate(tmap) if role == "line"]
        if apply_appends(patch, appends, lines) and map_id in state.get("y2", ()):
            patch["layout"]["yaxis2"]["visible"] = True
        apply_alerts(patch, alerts)
        if appends and state.get("open_band") is not None and not map_id.startswith("user:"):
            patch["layout"]["shapes"][state["open_band"]]["x1"] = last
        if map_id == "entropy" and any(key == m.ENTROPY_MEAN for key, _ in
                                       (tmap[i] for i, _, _ in appends)):
            _patch_projection(api, run, tmap, patch)
        return patch if (appends or alerts) else no_update

    charts = [patch_for(cid) for cid in chart_ids]
    users = [patch_for(f"user:{k}") for k in user_keys]
    new_state = Patch()
    new_state["last"] = last
    new_state["points"] = state["points"] + added
    new_state["alerts"].extend([a["id"] for a in alerts])
    return charts, users, new_state


def _patch_projection(api, run, tmap, patch) -> None:
    f = forecast(api, run["id"])
    for role, trace in (("projection", projection_trace(f)), ("interval", interval_trace(f))):
        index = next((i for i, (_, r) in enumerate(tmap) if r == role), None)
        if index is None:
            continue
        for field in ("x", "y", "name", "showlegend"):
            patch["data"][index][field] = trace[field]


def heat_names(kind: str, mode: str | None = None) -> tuple[str, list[str]]:
    if kind == "difficulty":
        return DIFFICULTY_MODES.get(mode or "total", DIFFICULTY_MODES["total"])
    return {"advantages": ("Advantage weights per step", [HISTOGRAMS["advantages"]]),
            "entropy": ("Token entropy per step", [HISTOGRAMS["entropy"]])}[kind]


def _matrix(api, run_id: int, names: list[str], **params) -> dict:
    # Several names (m_S + m_F per bin) are added by the server, step by step.
    return api.histograms(run_id, ",".join(names), **params)


def load_heat(api, run_id: int, kind: str, y_title: str, mode: str | None = None,
              quantiles_title: str | None = None) -> tuple[dict, dict | None, dict]:
    """A heatmap (and for advantages, quantile bands) in full, with the state to refresh them."""
    title, names = heat_names(kind, mode)
    matrix = _matrix(api, run_id, names, max_steps=MAX_COLUMNS)
    alerts = markers.run_markers(api, run_id)
    heat = heatmap_figure(matrix, title, y_title, alerts,
                          empty_message=f"not logged yet: histogram {' + '.join(names)}")
    bands = quantile_figure(matrix, quantiles_title, y_title, alerts) if quantiles_title else None
    empty = is_empty(matrix)
    state = {"run_id": run_id, "kind": kind, "mode": mode, "last": None if empty else matrix["steps"][-1],
             "first": None if empty else matrix["first_steps"][0], "cols": 0 if empty else len(matrix["steps"]),
             "sig": None if empty else heat_signature(matrix), "alerts": [a["id"] for a in alerts],
             "range": None if empty else occupied_range(matrix)}
    return heat, bands, state


def refresh_heat(api, state: dict, with_bands: bool):
    """(heat patch, bands patch, state patch, new steps), or None to load in full."""
    if state["last"] is None:
        return None
    _, names = heat_names(state["kind"], state["mode"])
    matrix = _matrix(api, state["run_id"], names, max_steps=MAX_COLUMNS, min_step=state["last"] + 1)
    alerts = new_alerts(markers.run_markers(api, state["run_id"], state["alerts"]), state["alerts"])
    fresh = not is_empty(matrix)
    if fresh and (heat_signature(matrix) != state["sig"] or state["cols"] + len(matrix["steps"]) > 2 * MAX_COLUMNS):
        return None
    if not fresh and not alerts:
        return no_update, no_update, no_update, []
    heat, bands, new_state = Patch(), Patch(), Patch()
    if fresh:
        heat["data"][1]["x"].extend(matrix["steps"])
        heat["data"][1]["z"].extend(column_shares(matrix))
        if with_bands:
            for i, (key, _, _) in enumerate(QUANTILE_TRACES, start=1):
                bands["data"][i]["x"].extend(matrix["steps"])
                bands["data"][i]["y"].extend(rounded(matrix["quantiles"].get(key, [None] * len(matrix["steps"]))))
            bands["data"][len(QUANTILE_TRACES) + 1]["x"].extend(matrix["steps"])
            bands["data"][len(QUANTILE_TRACES) + 1]["y"].extend(rounded(matrix["mean"]))
        new_state["last"] = matrix["steps"][-1]
        new_state["cols"] = state["cols"] + len(matrix["steps"])
        span, held = occupied_range(matrix), state.get("range")
        if span and held and (span[0] < held[0] or span[1] > held[1]):
            wider = [min(span[0], held[0]), max(span[1], held[1])]
            heat["layout"]["yaxis"]["range"] = wider
            new_state["range"] = wider
    apply_alerts(heat, alerts)
    if with_bands:
        apply_alerts(bands, alerts)
    new_state["alerts"].extend([a["id"] for a in alerts])
    return heat, (bands if with_bands else no_update), new_state, (matrix["steps"] if fresh else [])
