"""Fitting a step's candidate groups into its byte budget, whole groups only.

Groups are taken in the order of choice. When fewer than `min_groups` fit as they are,
every text is cut in the middle (fadewatch.protocol.rollouts.cut_middle) to the longest
length at which they do; then more groups are added while they fit. Bytes are those of
the JSON the record carries, measured with the same encoder.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from fadewatch.protocol.rollouts import (MAX_COMPLETION_CHARS, MAX_GROUP_KEY_CHARS, MAX_PROMPT_CHARS, clean_text,
                                         cut_middle, cut_plan, marker)

__all__ = ["fill", "rollout_bytes", "MIN_CHARS"]

MIN_CHARS = 64  # texts are never cut shorter than this to make room
# Bytes of each ASCII character in JSON with ensure_ascii (the record encoder's setting).
_ASCII = np.ones(128, dtype=np.int64)
_ASCII[:0x20] = 6
_ASCII[0x7F] = 6
_ASCII[[0x22, 0x5C, 0x08, 0x09, 0x0A, 0x0C, 0x0D]] = 2


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), allow_nan=False))


def rollout_bytes(groups: list[dict]) -> int:
    """Bytes of a record's `rollouts` value on the wire."""
    return _json_len(groups)


class _Text:
    """A text and the running sum of its characters' lengths in JSON (ASCII, escaped)."""

    def __init__(self, text: str):
        self.text = text
        if text.isascii():
            width = _ASCII[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        else:
            cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            width = np.where(cps < 0x80, _ASCII[np.minimum(cps, 0x7F)], np.where(cps < 0x10000, 6, 12))
        self.prefix = np.zeros(len(text) + 1, dtype=np.int64)
        np.cumsum(width, out=self.prefix[1:])

    def json_len(self, cap: int | None) -> tuple[int, int]:
        """Bytes of the text cut to `cap` (None: whole) as a JSON string, and the characters cut."""
        n = len(self.text)
        if cap is None or n <= cap:
            return 2 + int(self.prefix[n]), 0
        head, tail, cut, marked = cut_plan(n, cap)
        size = 2 + int(self.prefix[head] + self.prefix[n] - self.prefix[n - tail])
        return size + (_marker_bytes(cut) if marked else 0), cut


@functools.lru_cache(maxsize=4096)
def _marker_bytes(cut: int) -> int:
    return _json_len(marker(cut)) - 2


def _clean(groups: list[dict]) -> None:
    """Text as the server stores it, within the protocol's limits (cut where longer)."""
    for g in groups:
        if g.get("prompt") is not None:
            g["prompt"], g["prompt_cut"] = cut_middle(clean_text(g["prompt"]), MAX_PROMPT_CHARS)
            g["_prompt"] = _Text(g["prompt"])
        for c in g["completions"]:
            c["text"], c["cut"] = cut_middle(clean_text(c["text"]), MAX_COMPLETION_CHARS)
            c["_text"] = _Text(c["text"])
        g["_base"] = _json_len(_shape(g, None, blank=True))


def _key(group: Any) -> int | str:
    # Ints as they are (int64 at most); any other id as text, as long as the server keeps.
    if isinstance(group, int) and not isinstance(group, bool):
        return group
    return clean_text(group.decode("utf-8", "replace") if isinstance(group, bytes) else str(group))[:MAX_GROUP_KEY_CHARS]


def _shape(g: dict, cap: int | None, blank: bool = False) -> dict:
    """The wire form of a group, every text cut to `cap` characters (None: as it is).

    blank: empty texts and no cut counts, the part of the size that does not depend on cap.
    """
    out = {"group": _key(g["group"])}
    if g.get("prompt") is not None:
        prompt, cut = cut_middle(g["prompt"], cap) if cap is not None and not blank else (g["prompt"], 0)
        out["prompt"] = "" if blank else prompt
        if cut + g.get("prompt_cut", 0) and not blank:
            out["prompt_cut"] = cut + g.get("prompt_cut", 0)
    if g.get("solve_rate") is not None:
        out["solve_rate"] = g["solve_rate"]
    completions = []
    for c in g["completions"]:
        text, cut = cut_middle(c["text"], cap) if cap is not None and not blank else (c["text"], 0)
        item = {"text": "" if blank else text}
        if cut + c.get("cut", 0) and not blank:
            item["cut"] = cut + c.get("cut", 0)
        for key in ("reward", "rewards", "advantage", "length", "entropy"):
            if c.get(key) is not None:
                item[key] = c[key]
        completions.append(item)
    out["completions"] = completions
    return out


def _size(g: dict, cap: int | None) -> int:
    """len(JSON of _shape(g, cap)) from the texts' running sums, without building it."""
    size = g["_base"]
    if "_prompt" in g:
        n, cut = g["_prompt"].json_len(cap)
        cut += g.get("prompt_cut", 0)
        size += n - 2 + (len(',"prompt_cut":') + len(str(cut)) if cut else 0)
    for c in g["completions"]:
        n, cut = c["_text"].json_len(cap)
        cut += c.get("cut", 0)
        size += n - 2 + (len(',"cut":') + len(str(cut)) if cut else 0)
    return size


def _total(groups: list[dict], cap: int | None) -> int:
    return 2 + sum(_size(g, cap) for g in groups) + max(len(groups) - 1, 0)


def _largest_cap(groups: list[dict], budget: int) -> int | None:
    """The longest text length at which `groups` fit the budget (None: not even at MIN_CHARS)."""
    longest = max(max((len(c["text"]) for c in g["completions"]), default=0) for g in groups)
    longest = max(longest, *(len(g.get("prompt") or "") for g in groups))
    lo, hi = MIN_CHARS, max(longest, MIN_CHARS)
    if _total(groups, lo) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _total(groups, mid) <= budget:
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
    if _total(groups[:first], None) > budget:
        while first >= 1:
            cap = _largest_cap(groups[:first], budget)
            if cap is not None:
                break
            first -= 1
        if first == 0:
            return []
    sources = list(groups[:first])
    used = _total(sources, cap)
    for g in groups[first:]:
        size = _size(g, cap) + 1
        if used + size <= budget:
            sources.append(g)
            used += size
    kept = [_shape(g, cap) for g in sources]
    while kept and rollout_bytes(kept) > budget:  # the running sums are exact; this is a guard
        kept.pop()
        sources.pop()
    _add_token_detail(kept, sources, budget - rollout_bytes(kept))
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
