"""Helpers of the dashboard tests: runs with known values, and reading charts out of the page."""

from __future__ import annotations

import json
import math

import httpx

__all__ = ["make_run", "post_steps", "step_record", "graph_data", "graph_selector", "wait_for_graph",
           "series_id"]


def step_record(step: int, samples: bool = True, **extra) -> dict:
    """A step whose values are known functions of the step (checked against the charts)."""
    counts = [0.0] * 80
    counts[38 + step % 4] = 6.0   # advantages near 0, moving across four bins
    counts[45] = 2.0
    scalars = {
        "reward/mean": round(0.2 + step / 100, 6),
        "entropy/mean": round(2.0 - step / 50, 6),
        "sign/balance": round(math.sin(step / 5) / 2, 6),
        "sign/m_pos": 0.2, "sign/m_neg": 0.1,
        "loss": round(1.0 / (step + 1), 6),
        **extra,
    }
    record = {
        "step": step,
        "scalars": scalars,
        "histograms": {"advantages": {"lo": -4.0, "hi": 4.0, "counts": counts, "count": 8.0, "sum": 0.4,
                                      "quantiles": {"0.05": -0.2, "0.25": -0.1, "0.5": 0.0, "0.75": 0.1,
                                                    "0.95": 0.5}}},
    }
    if samples:
        record["samples"] = [{"text": f"answer of step {step}", "group": "g0", "reward": 1.0, "advantage": 0.5}]
    return record


def make_run(api: httpx.Client, name: str, project: str = "dash", config: dict | None = None) -> int:
    r = api.post("/runs", json={"project": project, "name": name, "config": config or {"lr": 1e-6}})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def post_steps(api: httpx.Client, run_id: int, records: list[dict]) -> None:
    r = api.post(f"/runs/{run_id}/steps", json={"records": records})
    assert r.status_code == 200, r.text


def series_id(chart: str) -> str:
    """The DOM id Dash gives the run page's pattern-matched chart {"type": "run-series", "chart": ...}."""
    return json.dumps({"chart": chart, "type": "run-series"}, separators=(",", ":"))


def graph_selector(graph_id: str) -> str:
    return f"[id='{graph_id}'] .js-plotly-plot"


_DATA = """(id) => {
  const host = document.getElementById(id);
  const gd = host && (host.classList.contains('js-plotly-plot') ? host : host.querySelector('.js-plotly-plot'));
  if (!gd || !gd.data) return null;
  return {data: gd.data.map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
                                   type: t.type, color: (t.line || {}).color, z: t.z ? t.z.length : 0})),
          annotations: (gd.layout.annotations || []).map(a => a.text),
          shapes: (gd.layout.shapes || []).map(s => ({name: s.name, type: s.type, x0: s.x0, x1: s.x1}))};
}"""


def graph_data(page, graph_id: str) -> dict | None:
    """The traces a chart holds now (name, x, y, type, line colour, and for heatmaps their column count),
    its annotations' texts and its shapes (name, type, x0, x1)."""
    return page.evaluate(_DATA, graph_id)


def wait_for_graph(page, graph_id: str, condition: str, timeout: float = 20_000) -> None:
    """Wait until `condition`, a JS expression over `g` (as graph_data returns it), holds; the chart
    is scrolled into view first, as a reader would (charts below the fold load only then)."""
    page.wait_for_function("(id) => { const h = document.getElementById(id); if (h) h.scrollIntoView({block: 'center'});"
                           " return !!h; }", arg=graph_id, timeout=timeout)
    page.wait_for_function(f"(id) => {{ const g = ({_DATA})(id); return !!g && ({condition}); }}",
                           arg=graph_id, timeout=timeout)
