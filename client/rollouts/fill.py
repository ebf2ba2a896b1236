"""Fitting a step's candidate groups into its byte budget, whole groups only.

Groups are taken in the order of choice. When fewer than `min_groups` fit as they are,
every text is cut in the middle (fadewatch.protocol.rollouts.cut_middle) to the longest
length at which they do; then more groups are added while they fit. Bytes are those of
the JSON the record carries, measured with the same encoder.
"""

from __future__ import annotations

import json
from typing import Any

from fadewatch.protocol.rollouts import (MAX_COMPLETION_CHARS, MAX_GROUP_KEY_CHARS, MAX_PROMPT_CHARS, clean_text,
                                         cut_middle)

__all__ = ["fill", "rollout_bytes", "MIN_CHARS"]

MIN_CHARS = 64  # texts are never cut shorter than this to make room


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), allow_nan=False))


def rollout_bytes(groups: list[dict]) -> int:
    """Bytes of a record's `rollouts` value on the wire."""
    return _json_len(groups)


def _clean(groups: list[dict]) -> None:
    """Text as the server stores it, within the protocol's limits (cut where longer)."""
    for g in groups:
        if g.get("prompt") is not None:
            g["prompt"], g["prompt_cut"] = cut_middle(clean_text(g["prompt"]), MAX_PROMPT_CHARS)
        for c in g["completions"]:
            c["text"], c["cut"] = cut_middle(clean_text(c["text"]), MAX_COMPLETION_CHARS)


def _key(group: Any) -> int | str:
    # Ints as they are (int64 at most); any other id as text, as long as the server keeps.
    if isinstance(group, int) and not isinstance(group, bool):
        return group
    return clean_text(group.decode("utf-8", "replace") if isinstance(group, bytes) else str(group))[:MAX_GROUP_KEY_CHARS]


def _shape(g: dict, cap: int | None) -> dict:
    """The wire form of a group, every text cut to `cap` characters (None: as it is)."""
    out = {"group": _key(g["group"])}
    if g.get("prompt") is not None:
        prompt, cut = cut_middle(g["prompt"], cap) if cap is not None else (g["prompt"], 0)
        out["prompt"] = prompt
        if cut + g.get("prompt_cut", 0):
            out["prompt_cut"] = cut + g.get("prompt_cut", 0)
    if g.get("solve_rate") is not None:
        out["solve_rate"] = g["solve_rate"]
    completions = []
    for c in g["completions"]:
        text, cut = cut_middle(c["text"], cap) if cap is not None else (c["text"], 0)
        item = {"text": text}
        if cut + c.get("cut", 0):
            item["cut"] = cut + c.get("cut", 0)
        for key in ("reward", "rewards", "advantage", "length", "entropy"):
            if c.get(key) is not None:
                item[key] = c[key]
        completions.append(item)
    out["completions"] = completions
    return out


def _total(shaped: list[dict]) -> int:
    return 2 + sum(map(_json_len, shaped)) + max(len(shaped) - 1, 0)


def _largest_cap(groups: list[dict], budget: int) -> int | None:
    """The longest text length at which `groups` fit the budget (None: not even at MIN_CHARS)."""
    longest = max(max((len(c["text"]) for c in g["completions"]), default=0) for g in groups)
    longest = max(longest, *(len(g.get("prompt") or "") for g in groups))
    lo, hi = MIN_CHARS, max(longest, MIN_CHARS)
    if _total([_shape(g, lo) for g in groups]) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _total([_shape(g, mid) for g in groups]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fill(groups: list[dict], budget: int, min_groups: int) -> list[dict]:
    """The wire form of as many whole groups as the budget holds, in their order."""
    if not groups or budget <= 2:
        return []
    _clean(groups)
    first = min(max(min_groups, 1), len(groups))
    cap = None
    if _total([_shape(g, None) for g in groups[:first]]) > budget:
        while first >= 1:
            cap = _largest_cap(groups[:first], budget)
            if cap is not None:
                break
            first -= 1
        if first == 0:
            return []
    kept = [_shape(g, cap) for g in groups[:first]]
    used = _total(kept)
    sources = list(groups[:first])
    for g in groups[first:]:
        shaped = _shape(g, cap)
        size = _json_len(shaped) + 1
        if used + size <= budget:
            kept.append(shaped)
            sources.append(g)
            used += size
    _add_token_detail(kept, sources, budget - used)
    return kept


def _add_token_detail(kept: list[dict], sources: list[dict], room: int) -> None:
    """Per-token pieces for the completions that carry them, while they fit and their text is whole."""
    for shaped, g in zip(kept, sources):
        for item, c in zip(shaped["completions"], g["completions"]):
            tokens = c.get("tokens")
            if tokens is None or item.get("cut") or item["text"] != "".join(tokens["text"]):
                continue
            extra = _json_len(tokens) + len(',"tokens":')
            if extra <= room:
                item["tokens"] = tokens
                room -= extra
