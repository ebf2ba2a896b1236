"""finalize_rollouts(): on the background thread, the copied rows become whole groups of
rollouts (decoded text, numbers, per-token detail) fitted into the step's byte budget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fadewatch.protocol.rollouts import MAX_GROUP_SIZE
from fadewatch.rollouts.choice import Chosen
from fadewatch.rollouts.fill import fill
from fadewatch.rollouts.text import ids_text
from fadewatch.stats.backend import is_torch, pick

__all__ = ["finalize_rollouts"]


def _marker(tokens: int) -> str:
    return f"\n… [{tokens:,} tokens cut] …\n"


def _ids(row: Any) -> list[int]:
    if is_torch(row):
        row = row.detach().cpu()
    return np.asarray(row).reshape(-1).astype(np.int64).tolist()


class _Texts:
    """Token-id segments decoded in one batch; each text is its head, and its tail after a marker."""

    def __init__(self, decoder: Any):
        self.decoder, self.segments, self.plans = decoder, [], []

    def add(self, head: list[int], tail: list[int] | None = None, gap: int = 0) -> int:
        self.plans.append((len(self.segments), tail is not None, gap))
        self.segments.append(head)
        if tail is not None:
            self.segments.append(tail)
        return len(self.plans) - 1

    def decode(self) -> list[str]:
        if self.decoder is not None:
            out = self.decoder.texts(self.segments)
        else:
            out = [ids_text(s) for s in self.segments]
        return [out[i] + (_marker(gap) + out[i + 1] if two else "") for i, two, gap in self.plans]


def _capped(ids: list[int], m: int) -> tuple[list[int], list[int] | None, int]:
    if len(ids) <= m:
        return ids, None, 0
    head = (2 * m) // 3
    return ids[:head], ids[len(ids) - (m - head):], len(ids) - m


def _dense_row(h: dict, prefix: str, i: int) -> tuple[list[int], list[int] | None, int, np.ndarray]:
    ids = np.asarray(h[f"ro.{prefix}ids"][i]).astype(np.int64)
    ok = ids >= 0  # padding was copied as -1
    gap = int(np.asarray(h[f"ro.{prefix}gap"]).reshape(-1)[i])
    if gap <= 0:
        return ids[ok].tolist(), None, 0, ok
    head = (2 * len(ids)) // 3
    return ids[:head][ok[:head]].tolist(), ids[head:][ok[head:]].tolist(), gap, ok


def _num(h: dict, key: str, i: int) -> float | None:
    a = h.get(key)
    if a is None:
        return None
    v = float(np.asarray(a).reshape(-1)[i])
    return v if math.isfinite(v) else None


def _completion_texts(h: dict, c: Chosen, cand: np.ndarray) -> dict[int, str]:
    """Text of every filled slot i = k * gmax + j."""
    slots = {k * c.gmax + j: int(row) for k, code in enumerate(cand) for j, row in enumerate(c.table[code]) if row >= 0}
    if c.completions_kind == "text":
        return dict(zip(slots, map(str, pick(c.completions, np.fromiter(slots.values(), np.int64)))))
    m = c.inputs.plan.config.max_tokens
    texts = _Texts(c.inputs.decoder)
    if c.completions_kind == "ids":
        plan = {i: texts.add(*_dense_row(h, "", i)[:3]) for i in slots}
    else:
        plan = {i: texts.add(*_capped(_ids(row), m)) for i, row in
                zip(slots, pick(c.completions, np.fromiter(slots.values(), np.int64)))}
    out = texts.decode()
    return {i: out[p] for i, p in plan.items()}


def _prompt_texts(h: dict, c: Chosen, cand: np.ndarray) -> list[str | None]:
    ri = c.inputs
    if ri.prompts is None:
        return [None] * len(cand)
    rows = c.prompt_row[cand]
    if ri.prompts_kind == "text":
        return list(map(str, pick(ri.prompts, rows)))
    texts = _Texts(ri.decoder)
    if ri.prompts_kind == "ids":
        plan = [texts.add(*_dense_row(h, "p", k)[:3]) for k in range(len(cand))]
    else:
        plan = [texts.add(*_capped(_ids(row), ri.plan.config.max_tokens)) for row in pick(ri.prompts, rows)]
    out = texts.decode()
    return [out[p] for p in plan]


def _detail_ids(h: dict, c: Chosen, slot: int, row: int) -> tuple[list[int], np.ndarray] | None:
    """A first-group row's ids and which copied positions they hold (None when cut to head and tail)."""
    if c.completions_kind == "ids":
        head, tail, _, ok = _dense_row(h, "", slot)
        return None if tail is not None else (head, ok)
    ids = _ids(pick(c.completions, np.array([row]))[0])
    width = np.asarray(h["ro.d.ent"][slot]).shape[0]
    return None if len(ids) > width else (ids, np.arange(width) < len(ids))


def _token_detail(h: dict, c: Chosen, group: dict) -> None:
    """Per-token pieces, entropy and log-prob for a few completions of the first group:
    the largest positive and negative advantages first."""
    if not c.detail:
        return
    items = group["completions"]
    by_size = sorted(range(len(items)), key=lambda j: -abs(items[j]["advantage"] or 0))
    pos = [j for j in by_size if (items[j]["advantage"] or 0) > 0]
    neg = [j for j in by_size if (items[j]["advantage"] or 0) <= 0]
    picked = [j for pair in zip(pos, neg) for j in pair] + pos[len(neg):] + neg[len(pos):]
    for j in picked[:c.inputs.plan.config.token_detail]:
        item = items[j]
        found = _detail_ids(h, c, item["_slot"], item["_row"])
        if found is None:
            continue
        ids, ok = found
        if c.inputs.decoder is not None:
            pieces = c.inputs.decoder.pieces(ids, item["text"])
        else:
            pieces = [("" if n == 0 else " ") + str(t) for n, t in enumerate(ids)]
        if pieces is None:
            continue
        detail = {"text": pieces, "entropy": _rounded(np.asarray(h["ro.d.ent"][item["_slot"]])[ok])}
        if "ro.d.lp" in h:
            detail["logprob"] = _rounded(np.asarray(h["ro.d.lp"][item["_slot"]])[ok])
        item["tokens"] = detail


def _round(value: float | None) -> float | None:
    # Five decimals of a mean entropy: past them it differs between devices and orders of summing.
    return None if value is None else round(value, 5)


def _rounded(values: Any) -> list[float | None]:
    return [round(v, 3) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def finalize_rollouts(h: dict, meta: dict) -> list[dict]:
    """The step's rollouts in wire form (a list of groups), within its byte budget."""
    c: Chosen | None = meta.get("rollouts")
    if c is None:
        return []
    cfg = c.inputs.plan.config
    cand = np.asarray(h["ro.cand"]).reshape(-1).astype(np.int64)
    texts = _completion_texts(h, c, cand)
    prompts = _prompt_texts(h, c, cand)
    groups = []
    for k, code in enumerate(cand.tolist()):
        slots = c.table[code]
        if int((slots >= 0).sum()) > MAX_GROUP_SIZE:
            continue
        completions = []
        for j, row in enumerate(slots.tolist()):
            if row < 0:
                continue
            i = k * c.gmax + j
            length = _num(h, "ro.len", i)
            if length is None and c.completion_lengths is not None:
                length = float(c.completion_lengths[row])
            item = {"text": texts[i], "reward": _num(h, "ro.r", i), "advantage": _num(h, "ro.adv", i),
                    "length": None if length is None else int(round(length)), "entropy": _round(_num(h, "ro.ent", i)),
                    "_slot": i, "_row": row}
            if c.part_names:
                item["rewards"] = {name: _num(h, f"ro.part{p}", i) for p, name in enumerate(c.part_names)}
            completions.append(item)
        group = {"group": c.labels[code], "prompt": prompts[k], "solve_rate": _num(h, "ro.p", k),
                 "completions": completions}
        if k == 0:
            _token_detail(h, c, group)
        groups.append(group)
    return fill(groups, c.inputs.plan.budget, cfg.min_groups)
