"""Colours and the base figure layout, shared by every page and the static report.

Figures are theme-neutral (transparent backgrounds, mid-grey text and grid): the page's
stylesheet (assets/fadewatch.css) recolours text and grid for the light or dark theme, so
switching themes never rebuilds a figure.
"""

from __future__ import annotations

__all__ = [
    "RUN_PALETTE",
    "run_color",
    "POS",
    "NEG",
    "ALERT",
    "WARNING",
    "NEUTRAL",
    "SERIES_COLORS",
    "HEATMAP_SCALE",
    "base_layout",
    "axis",
    "with_alpha",
]

# Tableau 10: distinct at a glance and readable on white and near-black.
RUN_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)
POS = "#1b9e77"      # positive mass, successes
NEG = "#d95f02"      # negative mass, failures
ALERT = "#e5484d"    # critical alert markers and alert bands
WARNING = "#f0a830"  # warning alert markers
NEUTRAL = "#7f8aa3"  # derived lines (projections, thresholds)
SERIES_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f")
HEATMAP_SCALE = "Viridis"

_TEXT = "#8c95a6"
_GRID = "rgba(140,149,166,0.22)"


def run_color(run_id: int) -> str:
    """The colour of a run, the same on every page: consecutive runs differ."""
    return RUN_PALETTE[int(run_id) % len(RUN_PALETTE)]


def with_alpha(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha:g})"


def axis(title: str | None = None, **extra) -> dict:
    out = {
        "gridcolor": _GRID, "zerolinecolor": _GRID, "linecolor": _GRID,
        # Fixed margins: automatic ones make Plotly measure and redraw every chart two or
        # three times, which more than doubles the time a page of charts takes to appear.
        "tickfont": {"size": 11}, "automargin": False, "showspikes": False,
    }
    if title:
        out["title"] = {"text": title, "font": {"size": 11}, "standoff": 6}
    out.update(extra)
    return out


def base_layout(title: str | None = None, x_title: str = "step", y_title: str | None = None,
                height: int = 280, **extra) -> dict:
    """Layout of every chart: transparent, compact, zoom kept across live updates."""
    layout = {
        "height": height,
        # Room above the plot for the title and, under it, the legend.
        "margin": {"l": 64, "r": 20, "t": 58 if title else 28, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12, "color": _TEXT},
        "xaxis": axis(x_title),
        "yaxis": axis(y_title),
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "xanchor": "left",
                   "font": {"size": 11}, "bgcolor": "rgba(0,0,0,0)"},
        "hovermode": "x unified",
        "hoverlabel": {"namelength": -1},
        # A constant uirevision keeps the user's zoom and legend clicks through live updates.
        "uirevision": "keep",
        "showlegend": True,
    }
    if title:
        layout["title"] = {"text": title, "x": 0, "xanchor": "left", "xref": "container", "y": 1,
                           "yanchor": "top", "yref": "container", "pad": {"t": 8, "l": 8},
                           "font": {"size": 13}}
    layout.update(extra)
    return layout
