"""The inspector's filters: read from its URL, turned into the rollouts API's query and into links."""

from __future__ import annotations

import bisect
import math
from urllib.parse import urlencode

from fadewatch.protocol.rollouts import parse_interval

__all__ = ["Filters", "from_query", "api_query", "inspector_path", "SIGN_OPTIONS", "bin_of"]

SIGN_OPTIONS = [{"label": "any sign", "value": ""}, {"label": "A > 0 (pushed up)", "value": "pos"},
                {"label": "A < 0 (pushed down)", "value": "neg"}, {"label": "A = 0 (no signal)", "value": "zero"}]
TEXT_KEYS = ("group", "prompt_id", "q")
INTERVAL_KEYS = ("difficulty", "advantage")
NUMBER_KEYS = ("min_reward", "max_reward", "min_length", "max_length")
Filters = dict  # the keys above, plus "sign", "step" and "scope" ("step" or "run")


def _number(value, integer: bool):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return int(v) if integer else v


def from_query(query: dict) -> Filters:
    """The filters a link asked for; anything malformed is left out rather than refused."""
    out: Filters = {}
    for key in TEXT_KEYS:
        if isinstance(query.get(key), str) and query[key].strip():
            out[key] = query[key][:200]
    for key in INTERVAL_KEYS:
        try:
            out[key] = parse_interval(query[key]).label() if key in query else None
        except ValueError:
            out[key] = None
    for key in NUMBER_KEYS:
        out[key] = _number(query.get(key), key.endswith("length"))
    out["sign"] = query.get("sign") if query.get("sign") in ("pos", "neg", "zero") else None
    step = _number(query.get("step"), True)
    out["step"] = step if step is not None and step >= 0 else None
    # A prompt's groups at every step, or a search over the run, span steps; the rest is one step.
    out["scope"] = "run" if query.get("scope") == "run" or (out.get("prompt_id") and step is None) else "step"
    return {k: v for k, v in out.items() if v is not None}


def api_query(filters: Filters, step: int | None) -> dict:
    """Query parameters of GET /runs/{id}/rollouts for these filters, at `step` unless the scope is the run."""
    params = {k: v for k, v in filters.items() if k not in ("scope", "step") and v not in (None, "")}
    if filters.get("scope") == "run":
        params["order"] = "asc" if filters.get("prompt_id") else "desc"
    elif step is not None:
        params["step"] = step
    return params


def inspector_path(run_id: int, **params) -> str:
    """Path of the inspector (under the dashboard prefix, without it) with these filters."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"runs/{int(run_id)}/rollouts" + (f"?{query}" if query else "")


def bin_of(edges: list[float], value: float) -> str | None:
    """The bin [lo,hi) of a histogram's edges holding `value`, as an interval the API takes."""
    i = bisect.bisect_right(edges, value) - 1
    if not edges or i < 0 or i >= len(edges) - 1:
        return None
    return f"[{edges[i]:g},{edges[i + 1]:g})"
