"""The run's sign and difficulty regimes, as the server's sign rule holds them: the header's badge
and the bands behind the run's charts (the page computes no regime of its own)."""

from __future__ import annotations

from dash import html

from fadewatch.dashboard.figures.theme import NEG, POS, with_alpha
from fadewatch.errors import ServerError

__all__ = ["run_regime", "regime_badge", "regime_shapes", "bands_signature"]

# Success-heavy mass pushes successes up (the positive-mass colour), failure-heavy pushes failures down.
_COLOR = {"success-heavy": POS, "failure-heavy": NEG}


def run_regime(api, run_id: int) -> dict | None:
    """GET /runs/{id}/regime, or None when it cannot be read (the page then shows no regime)."""
    try:
        return api.get(f"/runs/{int(run_id)}/regime")
    except ServerError:
        return None


def regime_badge(regime: dict | None) -> html.Span | None:
    sign, diff = (regime or {}).get("sign"), (regime or {}).get("difficulty")
    if not sign or not sign.get("state"):
        return None
    label = sign["state"] + (f" · {diff['state']} prompts" if diff and diff.get("state") else "")
    tip = "; ".join(x for x in (sign.get("reading"), diff and diff.get("reading"), regime.get("consequence")
                                and f"under way: {regime['consequence']}", regime.get("note")) if x)
    kind = "warning" if regime.get("consequence") else "info"
    return html.Span(["regime ", html.Span(label, className=f"fw-badge {kind}", id="run-regime-badge")], title=tip)


def regime_shapes(regime: dict | None, last_step: int | None) -> list[dict]:
    """A faint band behind the charts for each span of success-heavy or failure-heavy mass."""
    out = []
    for span in (regime or {}).get("spans") or []:
        color = _COLOR.get(span.get("sign"))
        end = span.get("end") if span.get("end") is not None else last_step
        if color is None or end is None:
            continue
        out.append({"type": "rect", "xref": "x", "yref": "paper", "x0": span["start"], "x1": end, "y0": 0, "y1": 1,
                    "fillcolor": with_alpha(color, 0.08), "line": {"width": 0}, "layer": "below",
                    "name": f"regime-{span['sign']}-{span['start']}"})
    return out


def bands_signature(regime: dict | None) -> list:
    """What must stay equal for the held bands to be patched rather than drawn again."""
    return [[s["start"], s.get("sign")] for s in (regime or {}).get("spans") or [] if s.get("sign") in _COLOR]
