"""Pure figure builders for histograms over steps: heatmaps, quantile bands, one step's shape.

Input is the matrix the histograms API returns: `steps` (last step of each column),
`edges` (or `labels` for categorical bins), `counts` (one row of bins per column),
`count`, `quantiles`, ... Heatmaps colour each column by share, so a column that merges
many steps reads the same as one that holds a single step.
"""

from __future__ import annotations

from collections.abc import Sequence

from fadewatch.dashboard.figures.series import (
    ALERT_AXIS,
    _alert_axis,
    alert_shapes,
    alert_trace,
    empty_figure,
    rounded,
    text,
)
from fadewatch.dashboard.figures.theme import HEATMAP_SCALE, NEUTRAL, SERIES_COLORS, base_layout, with_alpha

__all__ = [
    "column_shares",
    "occupied_range",
    "bin_axis",
    "heatmap_figure",
    "quantile_figure",
    "QUANTILE_TRACES",
    "distribution_figure",
    "is_empty",
]

# (quantile key, label, fill to the previous trace?) in trace order after the alert trace.
QUANTILE_TRACES = (
    ("0.05", "5%", False),
    ("0.95", "5–95%", True),
    ("0.25", "25%", False),
    ("0.75", "25–75%", True),
    ("0.5", "median", False),
)


def is_empty(matrix: dict | None) -> bool:
    return not matrix or not matrix.get("steps")


def column_shares(matrix: dict) -> list[list[float | None]]:
    """Each column's counts as shares of its total (values outside the bins included).

    Empty bins are None, which a heatmap leaves transparent: the background shows where
    nothing fell, as in TensorBoard's histogram view.
    """
    out = []
    for row, total in zip(matrix["counts"], matrix.get("count") or [None] * len(matrix["counts"])):
        denom = total if total and total > 0 else sum(row)
        out.append([float("%.4g" % (c / denom)) if denom > 0 and c > 0 else None for c in row])
    return out


def occupied_range(matrix: dict, margin_bins: int = 2) -> list[float] | None:
    """The value range of the bins that ever held anything, widened by a few bins (None: all)."""
    if matrix.get("labels") or is_empty(matrix):
        return None
    used = [i for i in range(len(matrix["edges"]) - 1) if any(row[i] > 0 for row in matrix["counts"])]
    if not used:
        return None
    e = matrix["edges"]
    lo, hi = max(0, used[0] - margin_bins), min(len(e) - 1, used[-1] + 1 + margin_bins)
    return [e[lo], e[hi]]


def bin_axis(matrix: dict) -> tuple[list, bool]:
    """Y values of the bins: their labels (categorical) or their centres; and whether categorical."""
    if matrix.get("labels"):
        return [text(label) for label in matrix["labels"]], True
    e = matrix["edges"]
    return [round((a + b) / 2, 6) for a, b in zip(e[:-1], e[1:])], False


def heatmap_figure(matrix: dict | None, title: str, y_title: str, alerts: Sequence[dict] = (),
                   empty_message: str = "no histogram logged yet", height: int = 300) -> dict:
    """Histogram over steps as a heatmap, like TensorBoard's histogram view.

    Trace 0 is the alert markers, trace 1 the heatmap (z holds one list per column, transposed).
    """
    if is_empty(matrix):
        return empty_figure(empty_message, height=height, title=text(title))
    ys, categorical = bin_axis(matrix)
    heat = {
        "type": "heatmap", "x": matrix["steps"], "y": ys, "z": column_shares(matrix), "transpose": True,
        "colorscale": HEATMAP_SCALE, "zmin": 0, "name": text(title), "showscale": True,
        "colorbar": {"tickformat": ".0%", "thickness": 10, "len": 0.9, "title": {"text": "share", "side": "right"}},
        "hovertemplate": f"step %{{x}}<br>{text(y_title)} %{{y}}<br>share %{{z:.1%}}<extra></extra>",
    }
    layout = base_layout(text(title), y_title=text(y_title), height=height)
    layout["hovermode"] = "closest"
    layout[ALERT_AXIS] = _alert_axis()
    layout["shapes"] = alert_shapes(alerts)
    layout["showlegend"] = False
    layout["margin"]["t"] = 36
    if categorical:
        layout["yaxis"]["type"] = "category"
        # Room for bin labels such as "(0.9,1)" beside the axis title.
        layout["margin"]["l"] = 20 + 7 * max(len(str(y)) for y in ys) + 24
    else:
        span = occupied_range(matrix)
        if span:
            layout["yaxis"]["range"] = span
    return {"data": [alert_trace(alerts), heat], "layout": layout}


def quantile_figure(matrix: dict | None, title: str, y_title: str, alerts: Sequence[dict] = (),
                    height: int = 280) -> dict:
    """Quantile bands over steps: 5–95% and 25–75% shaded, the median and the mean as lines.

    Trace 0 is the alert markers, then QUANTILE_TRACES in order, then the mean.
    """
    if is_empty(matrix):
        return empty_figure("no histogram logged yet", height=height, title=text(title))
    color = SERIES_COLORS[0]
    data = [alert_trace(alerts)]
    q = matrix.get("quantiles") or {}
    for key, label, fill in QUANTILE_TRACES:
        trace = {"type": "scatter", "mode": "lines", "x": matrix["steps"], "y": rounded(q.get(key, [])),
                 "name": label, "hovertemplate": "%{y:.3g}", "legendgroup": label,
                 "line": {"width": 0 if key != "0.5" else 1.8, "color": color}}
        if fill:
            trace["fill"] = "tonexty"
            trace["fillcolor"] = with_alpha(color, 0.15 if key == "0.95" else 0.3)
        else:
            trace["showlegend"] = key == "0.5"
        data.append(trace)
    data.append({"type": "scatter", "mode": "lines", "x": matrix["steps"], "y": rounded(matrix.get("mean", [])),
                 "name": "mean", "line": {"width": 1.2, "color": NEUTRAL, "dash": "dot"},
                 "hovertemplate": "%{y:.3g}"})
    layout = base_layout(text(title), y_title=text(y_title), height=height)
    layout[ALERT_AXIS] = _alert_axis()
    layout["shapes"] = alert_shapes(alerts)
    return {"data": data, "layout": layout}


def distribution_figure(matrix: dict | None, x_title: str, height: int = 280) -> dict:
    """One column of a histogram matrix (normally one step) as bars of shares."""
    if is_empty(matrix):
        return empty_figure("pick a step on the slider", height=height)
    col = -1
    shares = column_shares(matrix)[col]
    ys, categorical = bin_axis(matrix)
    first, last = matrix["first_steps"][col], matrix["steps"][col]
    which = f"step {last}" if first == last else f"steps {first}–{last}"
    shares = [v or 0.0 for v in shares]
    bar = {"type": "bar", "x": ys, "y": shares, "marker": {"color": SERIES_COLORS[0]},
           "hovertemplate": f"{text(x_title)} %{{x}}<br>share %{{y:.2%}}<extra></extra>", "name": which}
    if not categorical:
        e = matrix["edges"]
        bar["width"] = [b - a for a, b in zip(e[:-1], e[1:])]
    total = (matrix.get("count") or [0])[col] or 0
    outside = (matrix.get("underflow") or [0])[col] + (matrix.get("overflow") or [0])[col]
    title = f"Distribution at {which}"
    if total:
        title += f" · {total:.0f} values, {outside / total:.1%} outside the bins"
    layout = base_layout(title, x_title=text(x_title), y_title="share", height=height)
    layout["yaxis"]["tickformat"] = ".0%"
    layout["bargap"] = 0.02
    layout["showlegend"] = False
    layout["margin"]["t"] = 36
    layout["hovermode"] = "closest"
    if categorical:
        layout["xaxis"]["type"] = "category"
    else:
        span = occupied_range({**matrix, "counts": [matrix["counts"][col]]}, margin_bins=3)
        if span:
            layout["xaxis"]["range"] = span
    mean = (matrix.get("mean") or [None])[col]
    if mean is not None and not categorical:
        layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": mean, "x1": mean, "y0": 0, "y1": 1,
                             "line": {"color": NEUTRAL, "dash": "dot", "width": 1}}]
    return {"data": [bar], "layout": layout}
