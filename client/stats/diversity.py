"""Diversity within groups: distinct completions, distinct-1/2, mean pairwise n-gram Jaccard.

Computed on at most ``diversity_max_groups`` groups, spread evenly over the batch. Words
(text) or token ids are hashed into int64 codes; every count of distinct items is a sort
of one group's codes followed by a comparison of neighbours.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from fadewatch.stats.backend import SENTINEL, NumpyOps, pick, take_rows
from fadewatch.stats.tokens import pad_rows

__all__ = ["reduce_diversity", "finalize_diversity"]

# Hashing is int64 arithmetic that wraps around (mod 2**64) in numpy and in torch alike.
_K1 = -7046029254386353131    # 0x9E3779B97F4A7C15 as a signed int64
_K2 = -4658895280553007687    # 0xBF58476D1CE4E5B9
_P = 1099511628211            # the 64-bit FNV prime
_LEN = 6364136223846793005
_LOW33 = (1 << 33) - 1


def _selection(g: Any, k_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of up to k_max evenly spread groups (group after group), their sizes, local index."""
    ng = g.ng
    k = min(ng, k_max)
    chosen = (np.arange(k, dtype=np.int64) * ng) // k
    order = np.argsort(g.codes, kind="stable")
    picked = np.zeros(ng, dtype=bool)
    picked[chosen] = True
    rows = order[picked[g.codes[order]]]
    sizes = g.sizes[chosen]
    local = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return rows, sizes, local


def _codes(inp: Any, B: Any, view: Any, rows: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """(backend, token codes [R, T], valid [R, T] or None, row hashes [R] or None)."""
    kind, x = inp.completions_kind, inp.completions
    if kind == "text":
        texts = list(map(str, pick(x, rows)))
        words = list(map(str.split, texts))
        flat = list(chain.from_iterable(words))
        codes = np.fromiter(map(hash, flat), dtype=np.int64, count=len(flat))
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        t = max(int(lengths.max(initial=0)), 1)
        valid = np.arange(t)[None, :] < lengths[:, None]
        c = np.zeros(valid.shape, dtype=np.int64)
        c[valid] = codes
        rh = np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts))
        return NumpyOps(), c, valid, rh
    if kind == "ids_ragged":
        H = NumpyOps()
        lengths = inp.completion_lengths[rows]
        t = max(int(lengths.max(initial=0)), 1)
        c = pad_rows(H, pick(x, rows), lengths, t, H.i64)
        return H, c, np.arange(t)[None, :] < lengths[:, None], None
    # Dense ids: gather the selected rows where the ids live, then use the main backend.
    c = B.asarray(take_rows(B, x, rows), B.i64)
    valid = None
    if view is not None and view.valid is not None and view.t == c.shape[1]:
        valid = view.valid[B.const(rows, B.i64)]
    return B, c, valid, None


def _mix(c: Any) -> Any:
    """Spread token codes over 64 bits (multiply, xor-shift, multiply)."""
    x = c * _K1
    x = x ^ ((x >> 31) & _LOW33)
    return x * _K2


def _ngram_hash(B: Any, mixed: Any, valid: Any, n: int) -> tuple[Any, Any]:
    """Hash of every n-gram [R, T-n+1] and whether all its tokens are real."""
    t = mixed.shape[1] - n + 1
    h = mixed[:, :t]
    for j in range(1, n):
        h = h * _P + mixed[:, j:j + t]
    v = None
    if valid is not None:
        v = valid[:, :t]
        for j in range(1, n):
            v = v & valid[:, j:j + t]
    return h, v


def _row_hash(B: Any, mixed: Any, valid: Any) -> Any:
    """Polynomial hash of each row's real tokens in order, and of its length."""
    t = mixed.shape[1]
    pw = np.cumprod(np.full(t, _P, dtype=np.int64)) if t else np.zeros(0, np.int64)
    term = mixed * B.const(pw, B.i64)[None, :]
    if valid is not None:
        term = B.where(valid, term, 0)
    if valid is None:
        return B.sum(term, axis=1) + ((t * _LEN + 2**63) % 2**64 - 2**63)  # wrapped like int64
    return B.sum(term, axis=1) + B.sum(B.cast(valid, B.i64), axis=1) * _LEN


def _blocks(B: Any, h: Any, valid: Any, k: int, ridx: Any, local: Any, bits: int) -> Any:
    """Keys (hash with its low bits replaced by the row-in-group), one sorted row per group.

    ridx [k, gmax] picks each group's rows (an index past the end pads); None when all k
    groups have the same size, as the rows are then already in blocks.
    """
    key = (h & ~((1 << bits) - 1)) | local.reshape(-1, *([1] * (h.ndim - 1)))
    if valid is not None:
        key = B.where(valid, key, SENTINEL)
    if ridx is not None:
        key = B.concat([key, B.full((1,) + tuple(key.shape[1:]), SENTINEL, B.i64)])[ridx]
    return B.sort(key.reshape(k, -1))


def _distinct(B: Any, s: Any, bits: int) -> tuple[Any, Any]:
    """Per sorted block: number of distinct hashes, number of real entries."""
    real = s != SENTINEL
    hh = s >> bits
    new = real[:, 1:] & (hh[:, 1:] != hh[:, :-1])
    distinct = B.count(real[:, :1], axis=1) + B.count(new, axis=1)
    return B.cast(distinct, B.f64), B.cast(B.count(real, axis=1), B.f64)


def _intersections(B: Any, s: Any, bits: int, gmax: int) -> tuple[Any, Any]:
    """|S_j| per (group, row) and |S_i & S_j| per (group, i, j) from sorted blocks."""
    k = s.shape[0]
    jm, g2 = (1 << bits) - 1, gmax * gmax
    real = s != SENTINEL
    first = B.concat([real[:, :1], real[:, 1:] & (s[:, 1:] != s[:, :-1])], axis=1)
    inter = B.zeros(k * g2, B.f64)
    if not B.sync_free:
        # Host: keep the unique (n-gram, row) entries only; entry e pairs with e + d while it
        # stays in the same (group, n-gram) run, so candidates only shrink as d grows.
        kk = B.arange(k)[:, None] + B.zeros(s.shape, B.i64)
        u, kk = s[first], kk[first]
        hu, ju = u >> bits, u & jm
        sizes = B.cast(B.bincount(kk * gmax + ju, k * gmax), B.f64)
        e = B.arange(max(u.shape[0] - 1, 0))
        for d in range(1, gmax):
            e = e[e + d < u.shape[0]]
            f = e + d
            e = e[(kk[e] == kk[f]) & (hu[e] == hu[f])]
            if e.shape[0] == 0:
                break
            inter = inter + B.bincount(kk[e] * g2 + ju[e] * gmax + ju[e + d], k * g2)
        return sizes, inter
    # Device: same shapes throughout; duplicates are pushed to the end by a second sort.
    s2 = B.sort(B.where(first, s, SENTINEL))
    real2 = s2 != SENTINEL
    h2, j2 = s2 >> bits, s2 & jm
    kidx = B.arange(k)[:, None]
    sizes = B.bincount(B.where(real2, kidx * gmax + j2, 0), k * gmax, B.cast(real2, B.f64))
    for d in range(1, gmax):
        same = real2[:, d:] & (h2[:, d:] == h2[:, :-d])
        pidx = B.where(same, kidx * g2 + j2[:, :-d] * gmax + j2[:, d:], 0)
        inter = inter + B.bincount(pidx, k * g2, B.cast(same, B.f64))
    return sizes, inter


def _jaccard(B: Any, raw: dict, s: Any, bits: int, sizes_k: np.ndarray) -> None:
    k, gmax = len(sizes_k), int(sizes_k.max())
    raw["div.jac"], raw["div.jac.n"] = 0.0, 0  # None unless some pair has n-grams
    if gmax < 2:
        return
    sizes, inter = _intersections(B, s, bits, gmax)
    iu, ju = np.triu_indices(gmax, 1)
    kp = np.repeat(np.arange(k), len(iu))
    ip, jp = np.tile(iu, k), np.tile(ju, k)
    keep = jp < sizes_k[kp]
    kp, ip, jp = kp[keep], ip[keep], jp[keep]
    both = inter[B.const(kp * gmax * gmax + ip * gmax + jp, B.i64)]
    union = sizes[B.const(kp * gmax + ip, B.i64)] + sizes[B.const(kp * gmax + jp, B.i64)] - both
    ok = union > 0
    jac = B.where(ok, both / B.clip(union, 1.0, None), 0.0)
    kpb = B.const(kp, B.i64)
    per_sum, per_n = B.bincount(kpb, k, jac), B.bincount(kpb, k, B.cast(ok, B.f64))
    has = per_n > 0
    raw["div.jac"] = B.sum(B.where(has, per_sum / B.clip(per_n, 1.0, None), 0.0))
    raw["div.jac.n"] = B.count(has)


def reduce_diversity(inp: Any, B: Any, view: Any, g: Any, raw: dict) -> None:
    cfg = inp.config
    if cfg.diversity_max_groups == 0 or inp.completions is None:
        return
    rows, sizes_k, local = _selection(g, cfg.diversity_max_groups)
    k, gmax = len(sizes_k), int(sizes_k.max())
    bits = max(1, (gmax - 1).bit_length())
    starts = np.cumsum(sizes_k) - sizes_k
    j = np.arange(gmax)
    ridx_h = np.where(j[None, :] < sizes_k[:, None], starts[:, None] + j[None, :], len(rows))
    D, c, valid, rh = _codes(inp, B, view, rows)
    ridx = None if sizes_k.min() == gmax else D.const(ridx_h, D.i64)
    loc = D.const(local, D.i64)
    mixed = _mix(c)
    rh = _row_hash(D, mixed, valid) if rh is None else D.const(rh, D.i64)
    d, _ = _distinct(D, _blocks(D, rh, None, k, ridx, loc, bits), bits)
    raw["div.frac"] = D.sum(d / D.const(sizes_k, D.f64))
    raw["div.k"] = k
    raw["div.d1"] = raw["div.d2"] = 0.0  # None unless some group has n-grams
    raw["div.d1.n"] = raw["div.d2.n"] = raw["div.jac.n"] = 0
    for n in sorted({1, 2, cfg.jaccard_n}):
        if c.shape[1] < n:
            continue
        h, v = _ngram_hash(D, mixed, valid, n)
        s = _blocks(D, h, v, k, ridx, loc, bits)
        if n in (1, 2):
            d, total = _distinct(D, s, bits)
            raw[f"div.d{n}"] = D.sum(D.where(total > 0, d / D.clip(total, 1.0, None), 0.0))
            raw[f"div.d{n}.n"] = D.count(total > 0)
        if n == cfg.jaccard_n:
            _jaccard(D, raw, s, bits, sizes_k)


def finalize_diversity(h: dict, out: Any) -> None:
    if "div.frac" not in h:
        return
    k = int(h["div.k"])
    out.put("diversity/groups_used", k)
    out.put("diversity/distinct_frac", float(h["div.frac"]) / k)
    for n in (1, 2):
        out.ratio(f"diversity/distinct_{n}", h[f"div.d{n}"], h[f"div.d{n}.n"])
    out.ratio("diversity/pairwise_jaccard", h.get("div.jac", 0.0), h["div.jac.n"])
