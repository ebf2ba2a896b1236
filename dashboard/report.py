"""A run as one static, self-contained HTML file: the run page's charts, Plotly inlined, no network.

    fadewatch report 12 -o run.html [--url http://127.0.0.1:8700] [--token fw_...]
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from fadewatch import __version__
from fadewatch.api_client import ApiClient
from fadewatch.dashboard.context import API_TIMEOUT_S
from fadewatch.dashboard.pages.run import loading
from fadewatch.dashboard.figures.histograms import distribution_figure
from fadewatch.dashboard.ui import fmt_age
from fadewatch.errors import NotFoundError, ServerError, Unauthorized, Unavailable

__all__ = ["build_report", "write_report", "ReportError"]

ASSETS = Path(__file__).parent / "assets"
SECTIONS = (
    ("Advantage weights", ["@adv-heatmap", "@adv-quantiles", "@adv-dist", "adv-moments", "adv-tails"]),
    ("Sign axis", ["sign-mass", "sign-balance"]),
    ("Difficulty axis", ["@diff-heatmap", "difficulty"]),
    ("Entropy", ["entropy", "entropy-seq", "@ent-heatmap"]),
    ("Diversity", ["diversity", "pass"]),
    ("Weight geometry, reward, length", ["geometry", "reward", "length"]),
)
WIDE = {"@adv-heatmap", "@ent-heatmap"}


def _script_json(value) -> str:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can appear."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).replace("<", "\\u003c")


def _figures(api: ApiClient, run: dict) -> tuple[dict, dict]:
    rid = run["id"]
    figs, users, _ = loading.load_series(api, run)
    heat, bands, _ = loading.load_heat(api, rid, "advantages", "advantage A",
                                       quantiles_title="Advantage quantiles: 5–95%, 25–75%, median, mean")
    figs["@adv-heatmap"], figs["@adv-quantiles"] = heat, bands
    last = run.get("last_step")
    one = api.histograms(rid, "advantages", max_steps=1, min_step=last, max_step=last) if last is not None else None
    figs["@adv-dist"] = distribution_figure(one, "advantage A")
    figs["@diff-heatmap"] = loading.load_heat(api, rid, "difficulty", "group success rate", "total")[0]
    figs["@ent-heatmap"] = loading.load_heat(api, rid, "entropy", "token entropy (nats)")[0]
    return figs, users


def _rollouts(api: ApiClient, run_id: int) -> list[dict]:
    """The newest step's first groups of rollouts."""
    try:
        rows = api.get(f"/runs/{int(run_id)}/rollouts", limit=16)["rollouts"]
    except (ServerError, KeyError, TypeError):
        return []
    return [r for r in rows if r["step"] == rows[0]["step"]]


def build_report(api: ApiClient, run_id: int) -> str:
    """The report's HTML; every string from the run is escaped, so it renders as text."""
    from plotly.offline import get_plotlyjs

    run = api.run(run_id)
    figs, users = _figures(api, run)
    e = html.escape
    plots: list[tuple[str, dict]] = []
    body: list[str] = []

    def figure(fig: dict, wide: bool = False) -> str:
        plots.append((f"fig-{len(plots)}", fig))
        return f'<div class="fw-card{" wide" if wide else ""}"><div id="{plots[-1][0]}"></div></div>'

    for title, ids in SECTIONS:
        cards = [figure(figs[i], i in WIDE) for i in ids if figs.get(i) is not None]
        body.append(f'<h2 class="fw-section">{e(title)}</h2><div class="fw-grid">{"".join(cards)}</div>')
    if users:
        cards = [figure(f) for f in users.values()]
        body.append(f'<h2 class="fw-section">Other scalars</h2><div class="fw-grid small">{"".join(cards)}</div>')
    config = json.dumps(run.get("config") or {}, indent=2, sort_keys=True, default=str)
    body.append(f'<h2 class="fw-section">Config</h2><pre class="fw-pre">{e(config)}</pre>')
    rollouts = _rollouts(api, run["id"])
    if rollouts:
        items = "".join(
            f'<div class="fw-sample"><div class="fw-meta">step <b>{e(str(r["step"]))}</b> · group '
            f'<b>{e(str(r["group"]))}</b> · reward <b>{e(str(r.get("reward", "–")))}</b> · advantage '
            f'<b>{e(str(r.get("advantage", "–")))}</b></div><pre class="fw-rollout-prompt">{e(str(r.get("prompt") or ""))}'
            f'</pre><pre>{e(str(r["completion"]))}</pre></div>' for r in rollouts)
        body.append(f'<h2 class="fw-section">Rollouts</h2>{items}')

    css = (ASSETS / "fadewatch.css").read_text(encoding="utf-8")
    last = "–" if run["last_step"] is None else f"{run['last_step']:,}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta = [("project", run["project"]), ("status", run["status"]), ("step", last),
            ("steps stored", f"{run['step_count']:,}"), ("data", fmt_age(run.get("last_time"))),
            ("run", f"#{int(run['id'])}"), ("generated", f"{generated} by fadewatch {__version__}")]
    header = (
        f'<h1 class="fw-title">{e(run["name"])}</h1><div class="fw-meta">'
        + "".join(f"<span>{e(label)} <b>{e(value)}</b></span>" for label, value in meta) + "</div>"
    )
    plot_calls = "".join(
        f'Plotly.newPlot("{div}",F[{i}].data,F[{i}].layout,{{displaylogo:false,responsive:true}});'
        for i, (div, _) in enumerate(plots)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(run["name"])} · fadewatch report</title>'
        f"<style>{css}</style></head>"
        '<body><div id="fw-root" class="fw theme-light"><header class="fw-header"><span class="fw-brand">fadewatch</span>'
        '<nav></nav><button class="fw-button" id="fw-theme-toggle">☾ / ☀</button></header>'
        f'<main class="fw-main">{header}{"".join(body)}</main></div>'
        f"<script>{get_plotlyjs()}</script>"
        f"<script>var F={_script_json([f for _, f in plots])};"
        'var root=document.getElementById("fw-root");'
        'if(window.matchMedia&&window.matchMedia("(prefers-color-scheme: dark)").matches){root.className="fw theme-dark";}'
        'document.getElementById("fw-theme-toggle").onclick=function(){'
        'root.className=root.className.indexOf("dark")>0?"fw theme-light":"fw theme-dark";};'
        f"{plot_calls}</script></body></html>"
    )


class ReportError(Exception):
    """The report could not be built; the message says why and what to do."""


def write_report(api_url: str, run_id: int, output: str | Path, token: str | None = None) -> Path:
    """Fetch the run from the server at `api_url` and write its report to `output`."""
    out = Path(output)
    try:
        with ApiClient(api_url, token, timeout=API_TIMEOUT_S) as api:
            text = build_report(api, run_id)
    except Unauthorized as exc:
        raise ReportError(f"{api_url} needs an API token: pass --token or set FADEWATCH_TOKEN") from exc
    except NotFoundError as exc:
        raise ReportError(f"run {run_id} is not on {api_url} (or belongs to another project)") from exc
    except Unavailable as exc:
        raise ReportError(f"could not read from {api_url}: {exc}; is `fadewatch server` running there?") from exc
    except ServerError as exc:
        raise ReportError(str(exc)) from exc
    out.write_text(text, encoding="utf-8")
    return out

