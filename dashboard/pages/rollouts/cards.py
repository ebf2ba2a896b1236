"""Rollouts as Dash components: one card per group, completions coloured by advantage sign and
size, text shaded by token entropy where the hook sent it. Pure: rollouts (as the API returns
them) in, components out. Every text is a string child, which Dash renders as a text node:
never as markup.
"""

from __future__ import annotations

import math
from itertools import groupby

from dash import dcc, html

from fadewatch.dashboard.ui import fmt_num

__all__ = ["group_cards", "groups_of", "preview", "shaded_text", "ENTROPY_SCALE"]

# Token entropy (nats) at which the shading is fullest; above it the colour stays the same.
ENTROPY_SCALE = 3.0
SIGN_LABEL = {"pos": "A > 0", "neg": "A < 0", "zero": "A = 0", None: "no A"}


def groups_of(rollouts: list[dict]) -> list[list[dict]]:
    """The API's rollouts (whole groups, one after the other) split into groups."""
    return [list(g) for _, g in groupby(rollouts, key=lambda r: (r["step"], r["group"]))]


def _finite(value) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def shaded_text(tokens: dict) -> list:
    """One span per token, its background as strong as its entropy; log-prob in the tooltip."""
    spans = []
    entropy = tokens.get("entropy") or [None] * len(tokens["text"])
    logprob = tokens.get("logprob") or [None] * len(tokens["text"])
    for piece, h, lp in zip(tokens["text"], entropy, logprob):
        alpha = 0.0 if _finite(h) is None else min(max(h, 0.0) / ENTROPY_SCALE, 1.0) * 0.6
        title = f"entropy {fmt_num(h)} · log p {fmt_num(lp)}"
        spans.append(html.Span(piece, title=title, className="fw-token",
                               style={"backgroundColor": f"rgba(242, 153, 74, {alpha:.2f})"}))
    return spans


def _completion(r: dict, scale: float) -> html.Div:
    sign = r.get("sign") or "none"
    size = abs(_finite(r.get("advantage")) or 0.0) / scale if scale > 0 else 0.0
    head = [
        html.Span(fmt_num(r.get("reward")), className=f"fw-badge reward {'good' if (r.get('reward') or 0) > 0 else ''}",
                  title="reward"),
        html.Span(f"A {r['advantage']:+.3g}" if _finite(r.get("advantage")) is not None else "A –",
                  className="fw-adv", title=SIGN_LABEL.get(r.get("sign"), "")),
        html.Span(f"{r['length']:,} tok" if r.get("length") is not None else "", className="fw-muted"),
        html.Span(f"H {fmt_num(r.get('entropy'))}" if r.get("entropy") is not None else "", className="fw-muted",
                  title="mean token entropy (nats)"),
        html.Span(f"#{r['index']}", className="fw-muted"),
    ]
    if r.get("rewards"):
        head.append(html.Span(" · ".join(f"{k} {fmt_num(v)}" for k, v in r["rewards"].items()), className="fw-muted"))
    if r.get("cut"):
        head.append(html.Span(f"{r['cut']:,} characters cut", className="fw-muted",
                              title="the hook cut the middle of this completion to fit its byte budget"))
    body = shaded_text(r["tokens"]) if r.get("tokens") else r["completion"]
    return html.Div([html.Div(head, className="fw-completion-head"),
                     html.Pre(body, className="fw-rollout-text")],
                    className=f"fw-rollout {sign}", style={"--fw-weight": f"{min(size, 1.0):.2f}"},
                    **{"data-rollout": str(r["id"])})


def _card(group: list[dict], scale: float, prompt_href: str | None, group_href: str | None,
          shown_all: bool) -> html.Div:
    first = group[0]
    solve = first.get("solve_rate")
    title = [html.B(f"step {first['step']:,}"), html.Span(f"group {first['group'] or '–'}", className="fw-muted"),
             html.Span(f"solve rate {solve:.2f}" if solve is not None else "", className="fw-muted"),
             html.Span(f"{len(group)} of {first['group_size']} rollouts" if not shown_all
                       else f"{first['group_size']} rollouts", className="fw-muted")]
    links = []
    if prompt_href:
        links.append(dcc.Link("This prompt over training →", href=prompt_href))
    if group_href and not shown_all:
        links.append(dcc.Link("Whole group", href=group_href))
    prompt = first.get("prompt")
    return html.Div([
        html.Div(title, className="fw-card-title"),
        html.Div(links, className="fw-card-links") if links else None,
        html.Pre(prompt if prompt is not None else "(no prompt logged)",
                 className="fw-rollout-prompt" + ("" if prompt is not None else " fw-muted")),
        *[_completion(r, scale) for r in group],
    ], className="fw-group-card", **{"data-group": f"{first['step']}/{first['group']}"})


def group_cards(rollouts: list[dict], prompt_href=None, group_href=None) -> list[html.Div]:
    """One card per group; `prompt_href(rollout)` / `group_href(rollout)` link a prompt's other
    steps and a group's every rollout (for pages filtered to some of them)."""
    finite = [abs(v) for v in (_finite(r.get("advantage")) for r in rollouts) if v is not None]
    scale = max(finite, default=0.0)
    cards = []
    for group in groups_of(rollouts):
        first = group[0]
        cards.append(_card(group, scale,
                           prompt_href(first) if prompt_href and first.get("prompt_id") else None,
                           group_href(first) if group_href else None,
                           shown_all=len(group) == first["group_size"]))
    return cards


def preview(rollouts: list[dict], limit_groups: int = 2) -> list[html.Div]:
    """The run page's glimpse: the first groups of one step, each completion on one line."""
    out = []
    for group in groups_of(rollouts)[:limit_groups]:
        first = group[0]
        rows = [html.Div([html.Span(fmt_num(r.get("reward")), className="fw-badge reward"),
                          html.Span(f"A {r['advantage']:+.2g}" if _finite(r.get("advantage")) is not None else "A –",
                                    className="fw-adv"),
                          html.Span(r["completion"], className="fw-line")],
                         className=f"fw-rollout-line {r.get('sign') or 'none'}") for r in group]
        out.append(html.Div([html.Div([html.B(f"group {first['group'] or '–'}"),
                                       html.Span(first.get("prompt") or "(no prompt logged)", className="fw-line")],
                                      className="fw-preview-head"), *rows], className="fw-preview"))
    return out
