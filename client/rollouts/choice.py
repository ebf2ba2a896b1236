"""Which groups a step keeps, chosen where the data lives, and the copy of their rows.

Every group gets a key; sorting the keys orders the groups. The groups of most |A| mass
come first (they drive the update); then one group per stratum in turn, the strata being
the sign of a group's advantages (both signs, positive only, negative only, zero) crossed
with its difficulty bin (solve rate), drawn at random within a stratum. On a GPU all of
this is sync-free (fixed shapes, no host reads): the training thread launches the ordering
and a gather of the first `groups` groups' rows, and the copy to the host is the one the
statistics already make. Everything that lives on the host (texts, lists of ids) is picked
later, on the background thread, from the copied order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fadewatch.protocol.rollouts import MAX_GROUP_SIZE
from fadewatch.stats.groups import Groups
from fadewatch.stats.tokens import pad_rows

__all__ = ["Chosen", "reduce_rollouts", "head_tail"]

SIGN_CLASSES = 4  # both signs, positive only, negative only, zero


@dataclass
class Chosen:
    """Host facts the background thread needs to turn the copied rows into rollouts."""

    inputs: Any                  # RolloutInputs
    k: int                       # candidate groups copied
    gmax: int                    # slots per group (the largest group)
    table: np.ndarray            # [ng, gmax] row of each slot, -1 where a group is smaller
    labels: list                 # group id of each code
    prompt_row: np.ndarray       # [ng] which prompt each group reads
    completions: Any             # texts or lists of ids (host), or None when gathered as dense ids
    completions_kind: str
    completion_lengths: np.ndarray | None
    part_names: list[str] = field(default_factory=list)
    detail: bool = False         # per-token entropy/log-prob rows of the first group were copied


def _groups(inp: Any, g: Groups | None) -> Groups:
    if g is not None:
        return g
    n = inp.n  # without group ids every rollout is a group of its own
    return Groups(np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64), None)


def _slots(g: Groups) -> np.ndarray:
    """[ng, gmax]: the rows of each group in their logged order, -1 past a group's size."""
    order = np.argsort(g.codes, kind="stable")
    starts = np.cumsum(g.sizes) - g.sizes
    local = np.arange(len(order), dtype=np.int64) - np.repeat(starts, g.sizes)
    table = np.full((g.ng, int(g.sizes.max())), -1, dtype=np.int64)
    table[g.codes[order], local] = order
    return table


def _strata_positions(nb: int, rng: np.random.Generator) -> np.ndarray:
    """Round-robin place of each stratum (sign class * nb + bin): the four sign classes come in
    turn, each from another difficulty bin, the bins shuffled each step."""
    perm = rng.permutation(nb)
    pos = np.empty(SIGN_CLASSES * nb, dtype=np.int64)
    for j in range(nb):
        for c in range(SIGN_CLASSES):
            pos[c * nb + perm[(j + c) % nb]] = j * SIGN_CLASSES + c
    return pos


def _keys(B: Any, g: Groups, adv: Any, r: Any, stats_cfg: Any, cfg: Any, seed: int) -> Any:
    ng = g.ng
    codes, size = B.const(g.codes, B.i64), B.const(g.sizes, B.f64)
    nb = len(stats_cfg.difficulty_edges) + 1
    strata = SIGN_CLASSES * nb
    rng = np.random.default_rng(seed)
    mass = None
    cls = B.zeros(ng, B.i64) + (SIGN_CLASSES - 1)
    if adv is not None:
        a = B.where((adv - adv) == 0, adv, 0.0)  # NaN and infinities weigh nothing here
        tol = stats_cfg.zero_tol
        has_p = B.bincount(codes, ng, B.cast(a > tol, B.f64)) > 0
        has_n = B.bincount(codes, ng, B.cast(a < -tol, B.f64)) > 0
        mass = B.bincount(codes, ng, B.xp.abs(a))
        cls = B.where(has_p & has_n, 0, B.where(has_p, 1, B.where(has_n, 2, 3)))
    gbin = B.zeros(ng, B.i64)
    if r is not None:
        p = B.bincount(codes, ng, B.cast(r >= stats_cfg.success_threshold, B.f64)) / size
        gbin = B.searchsorted(B.const(stats_cfg.difficulty_edges, B.f64), p) + B.cast(p >= 1.0, B.i64)
    stratum = B.cast(cls, B.i64) * nb + gbin
    # Rank within the stratum in a random order: sort by stratum + u (u in [0, 1)).
    first = B.argsort(B.cast(stratum, B.f64) + B.const(rng.random(ng) * 0.999, B.f64))
    counts = B.bincount(stratum, strata)
    starts = B.cumsum(counts) - counts
    rank = B.zeros(ng, B.i64)
    rank[first] = B.arange(ng) - starts[stratum[first]]
    key = B.cast(rank * strata + B.const(_strata_positions(nb, rng), B.i64)[stratum], B.f64)
    top = min(cfg.top_mass, ng)
    if mass is not None and top:
        key[B.argsort(-mass)[:top]] = B.cast(B.arange(top), B.f64) - top
    too_big = g.sizes > MAX_GROUP_SIZE  # cannot be kept whole: last, and skipped later
    if too_big.any():
        key = B.where(B.const(too_big, B.bool), float("inf"), key)
    return key


def head_tail(B: Any, x: Any, valid: Any, m: int) -> tuple[Any, Any, Any]:
    """The first 2/3 and last 1/3 of m columns of each row's real tokens; and the tokens left out."""
    rows, t = x.shape[0], x.shape[1]
    if t <= m:
        return x, valid, B.zeros(rows, B.i64)
    pos = B.arange(t)
    end = B.amax(B.where(valid, pos + 1, 0), axis=1) if valid is not None else B.zeros(rows, B.i64) + t
    head = (2 * m) // 3
    ar = B.arange(m)
    whole = end <= m
    idx = B.where(ar[None, :] < head, ar[None, :], (end - (m - head))[:, None] + (ar[None, :] - head))
    idx = B.clip(B.where(whole[:, None], ar[None, :], idx), 0, t - 1)
    gap = B.where(whole, 0, end - m)
    take = (lambda v: B.xp.gather(v, 1, idx)) if B.torch else (lambda v: np.take_along_axis(v, idx, 1))
    return take(x), (take(valid) if valid is not None else None), gap


def _dense_tokens(B: Any, inp: Any, name: str) -> Any:
    x = getattr(inp, name)
    if name in inp.ragged:
        x = pad_rows(B, x, inp.lengths, inp.t)
    return B.floating(x)


def reduce_rollouts(B: Any, inp: Any, g: Groups | None, adv: Any, r: Any, view: Any, raw: dict, meta: dict) -> None:
    """Order the groups and gather the rows of the first ones into `raw` (copied with the statistics)."""
    ri = inp.rollouts
    if ri is None or ri.plan.budget <= 0 or not inp.n:
        return
    cfg, stats_cfg = ri.plan.config, inp.config
    g = _groups(inp, g)
    table = _slots(g)
    k, gmax = min(cfg.groups, g.ng), table.shape[1]
    cand = B.argsort(_keys(B, g, adv, r, stats_cfg, cfg, ri.plan.seed))[:k]
    raw["ro.cand"] = cand
    rows = B.const(table, B.i64)[cand].reshape(-1)
    flat = B.where(rows < 0, 0, rows)  # empty slots read row 0 and are dropped on the host
    first_of_group = table[:, 0]
    if adv is not None:
        raw["ro.adv"] = adv[flat]
    if r is not None:
        raw["ro.r"] = r[flat]
        p = B.bincount(B.const(g.codes, B.i64), g.ng, B.cast(r >= stats_cfg.success_threshold, B.f64))
        raw["ro.p"] = (p / B.const(g.sizes, B.f64))[cand]
    for i, values in enumerate(ri.parts.values()):
        raw[f"ro.part{i}"] = B.cast(B.asarray(values), B.f64)[flat]
    if view is not None:
        raw["ro.len"] = view.lengths[flat]
    elif inp.completions_kind == "ids":
        raw["ro.len"] = B.zeros(flat.shape[0], B.f64) + float(inp.completions.shape[1])
    chosen = Chosen(ri, k, gmax, table, [g.label(c) for c in range(g.ng)], first_of_group, None,
                    inp.completions_kind, inp.completion_lengths, list(ri.parts))
    valid = view.valid[flat] if view is not None and view.valid is not None else None
    if inp.completions_kind == "ids":
        ids = B.asarray(inp.completions, B.i64)[flat]
        ok = valid if valid is not None and view.t == ids.shape[1] else None
        ids, ok, raw["ro.gap"] = head_tail(B, ids, ok, cfg.max_tokens)
        raw["ro.ids"] = ids if ok is None else B.where(ok, ids, -1)  # -1: padding, one copy for both
    else:
        chosen.completions = inp.completions
    if inp.entropy is not None:
        h = _dense_tokens(B, inp, "entropy")[flat]
        hv = h if valid is None else B.where(valid, h, 0.0)
        raw["ro.ent"] = B.cast(B.sum(hv, axis=1), B.f64) / B.clip(view.lengths[flat], 1.0, None)
        _detail(B, inp, cfg, h, valid, gmax, raw, chosen)
    _prompts(B, ri, g, cand, raw, chosen)
    meta["rollouts"] = chosen


def _detail(B: Any, inp: Any, cfg: Any, h: Any, valid: Any, gmax: int, raw: dict, chosen: Chosen) -> None:
    """Per-token entropy and log-prob of the first group's rows, aligned with their ids."""
    if not cfg.token_detail:
        return
    if inp.completions_kind == "ids":
        if inp.completions.shape[1] != h.shape[1]:
            return
    elif inp.completions_kind != "ids_ragged" or inp.lengths is None or not np.array_equal(
            inp.lengths, inp.completion_lengths):
        return
    first_valid = None if valid is None else valid[:gmax]
    raw["ro.d.ent"], _, _ = head_tail(B, h[:gmax], first_valid, cfg.max_tokens)
    if inp.logprobs is not None:
        slot_rows = B.const(chosen.table, B.i64)[raw["ro.cand"][:1]].reshape(-1)
        lp = _dense_tokens(B, inp, "logprobs")[B.where(slot_rows < 0, 0, slot_rows)]
        raw["ro.d.lp"], _, _ = head_tail(B, lp, first_valid, cfg.max_tokens)
    chosen.detail = True


def _prompts(B: Any, ri: Any, g: Groups, cand: Any, raw: dict, chosen: Chosen) -> None:
    if ri.prompts is None:
        return
    if ri.per_group:
        # Prompt j belongs to the j-th group to appear in the batch.
        appear = np.argsort(chosen.table[:, 0], kind="stable")
        chosen.prompt_row = np.empty(g.ng, dtype=np.int64)
        chosen.prompt_row[appear] = np.arange(g.ng, dtype=np.int64)
    if ri.prompts_kind == "ids":
        ids = B.asarray(ri.prompts, B.i64)[B.const(chosen.prompt_row, B.i64)[cand]]
        raw["ro.pids"], _, raw["ro.pgap"] = head_tail(B, ids, None, chosen.inputs.plan.config.max_tokens)
