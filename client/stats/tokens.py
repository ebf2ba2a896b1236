"""Token-level statistics: lengths, entropy, Cov(log pi, A), token-level advantages."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.stats.backend import is_torch
from fadewatch.stats.histogram import masked_quantiles, reduce_uniform, uniform_dict

__all__ = ["TokenView", "token_view", "pad_rows", "reduce_token_advantages", "reduce_tokens",
           "finalize_tokens"]


@dataclass
class TokenView:
    """Which token positions are real, shared by every token-level statistic."""

    valid: Any          # bool [N, T], or None when every position is real
    mf: Any             # valid as 0/1 floats, or None
    lengths: Any        # float64 [N]
    t: int


def pad_rows(B: Any, rows: Any, lengths: np.ndarray, t: int, dtype: Any = None) -> Any:
    """A list of per-rollout rows as one dense [N, t] array, zeros after each row's end.

    dtype None keeps the rows' own; python numbers become float64 unless dtype is int64.
    """
    n = len(rows)
    if is_torch(rows[0]):
        import torch

        flat = B.asarray(torch.cat([r.reshape(-1) for r in rows]), dtype)
    elif isinstance(rows[0], np.ndarray):
        flat = B.asarray(np.concatenate([np.asarray(r).reshape(-1) for r in rows]), dtype)
    else:
        np_dtype = np.int64 if dtype == B.i64 else np.float64
        try:
            flat = np.fromiter(chain.from_iterable(rows), dtype=np_dtype, count=int(lengths.sum()))
        except (TypeError, ValueError):
            raise UsageError("per-rollout rows must hold plain numbers") from None
        flat = B.asarray(flat, dtype)
    # Position of each flat value in the padded [N, t] array (row-major), computed vectorised.
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    shift = np.repeat(np.arange(n, dtype=np.int64) * t - first, lengths)
    where = B.const(np.arange(int(lengths.sum()), dtype=np.int64) + shift, B.i64)
    out = B.zeros(n * t, flat.dtype)
    out[where] = flat
    return out.reshape(n, t)


def _dense(B: Any, inp: Any, name: str, x: Any) -> Any:
    """A token-level input as a floating [N, T] array on the backend."""
    if name in inp.ragged:
        x = pad_rows(B, x, inp.lengths, inp.t)
    return B.floating(x)


def token_view(B: Any, inp: Any) -> TokenView | None:
    """Mask and lengths from the mask, the ragged rows, or (dense, no mask) all of T."""
    if inp.t is None:
        return None
    n, t = inp.n, inp.t
    if inp.mask is not None:
        m = B.asarray(inp.mask)
        valid = m if m.dtype == B.bool else m != 0
    elif inp.lengths is not None:
        valid = B.const(np.arange(t)[None, :] < inp.lengths[:, None], B.bool)
    else:
        return TokenView(None, None, B.zeros(n, B.f64) + float(t), t)
    mf = B.cast(valid, B.f32)
    return TokenView(valid, mf, B.cast(B.sum(mf, axis=1), B.f64), t)


@dataclass
class Masked:
    """A token-level input with padding and non-finite entries left out."""

    xv: Any             # x with those entries set to 0
    rows: Any           # float64 [N] row sums of xv
    valid: Any          # bool [N, T]: real and finite entries, or None when all are
    mf: Any             # valid as 0/1 floats, or None
    n_row: Any          # float64 [N]: real finite entries per row
    nonfinite: Any      # how many real entries are NaN or Inf
    finite: bool        # every real entry is finite (the host's fast path)


def _masked(B: Any, x: Any, view: TokenView) -> Masked:
    """x's real entries; NaN and Inf among them are counted and left out.

    On the host a multiply by the 0/1 mask is much cheaper than a select; the select is
    the fallback when x holds NaN or Inf (in a real token or in the padding).
    """
    if not B.torch:
        with np.errstate(invalid="ignore", over="ignore"):  # Inf * 0 in padding: handled below
            xv = x if view.mf is None else x * (view.mf if x.dtype == np.float32 else view.mf.astype(x.dtype))
            rows = xv.sum(axis=1, dtype=x.dtype).astype(np.float64)
        if np.isfinite(rows.sum()):
            return Masked(xv, rows, view.valid, view.mf, view.lengths, 0, True)
    fin = B.xp.isfinite(x)
    valid = fin if view.valid is None else view.valid & fin
    xv = B.where(valid, x, 0.0)
    rows = B.cast(B.sum(xv, axis=1, dtype=B.f64), B.f64)
    n_row = B.cast(B.count(valid, axis=1), B.f64)
    nonfinite = B.sum(view.lengths) - B.sum(n_row)
    mf = None if B.torch else valid.astype(np.float32)
    return Masked(xv, rows, valid, mf, n_row, nonfinite, False)


def _row_means(B: Any, m: Masked, lengths: Any) -> Any:
    """Per-rollout mean over real finite entries: 0 without real entries, NaN with only non-finite ones."""
    mean = m.rows / B.clip(m.n_row, 1.0, None)
    return B.where(lengths > 0, B.where(m.n_row > 0, mean, float("nan")), 0.0)


def reduce_token_advantages(B: Any, inp: Any, view: TokenView, raw: dict) -> tuple[Any, Masked]:
    """Token-level advantages: their histogram; returns the per-rollout masked mean
    (float64 [N], 0 for a rollout without tokens) and the masked token values."""
    cfg = inp.config
    a = _dense(B, inp, "advantages", inp.advantages)
    m = _masked(B, a, view)
    raw["adv_token.nonfinite"] = m.nonfinite
    reduce_uniform(B, raw, "h.adv_token", a, cfg.spec("advantages/token"), m.valid, m.mf, m.xv,
                   B.sum(m.rows), m.finite, tails=cfg.tail_values)
    return _row_means(B, m, view.lengths), m


def _both(B: Any, a: Masked, b: Masked) -> Any:
    """Where both token inputs are real and finite (None: everywhere)."""
    if a.valid is None:
        return b.valid
    return a.valid if b.valid is None else a.valid & b.valid


def reduce_tokens(B: Any, inp: Any, view: TokenView, raw: dict, adv: Any, adv_tokens: Masked | None) -> None:
    """Lengths, entropy and Cov(log pi, A). adv: (advantages with non-finite ones set to 0,
    where they are finite, their scale) per rollout, or None; adv_tokens: token-level ones."""
    cfg = inp.config
    lengths = view.lengths
    raw["len.sum"], raw["len.min"], raw["len.max"] = B.sum(lengths), B.amin(lengths), B.amax(lengths)
    if inp.entropy is not None:
        h = _dense(B, inp, "entropy", inp.entropy)
        m = _masked(B, h, view)
        raw["ent.nonfinite"] = m.nonfinite
        raw["ent.sum"], raw["ent.n"] = B.sum(m.rows), B.sum(m.n_row)
        has = m.n_row > 0
        seq = B.where(has, m.rows / B.clip(m.n_row, 1.0, None), 0.0)
        raw["ent.seq_q"], raw["ent.seq_n"] = masked_quantiles(B, seq, has, (0.1, 0.5, 0.9))
        reduce_uniform(B, raw, "h.entropy", h, cfg.spec("entropy"), m.valid, m.mf, m.xv,
                       raw["ent.sum"], m.finite, tails=cfg.tail_values)
    if inp.logprobs is not None and adv is not None:
        lp = _masked(B, _dense(B, inp, "logprobs", inp.logprobs), view)
        raw["lp.nonfinite"] = lp.nonfinite
        if adv_tokens is None:
            a, fin, scale = adv
            # sum_it m (L - Lbar)(A_i - Abar) = sum_i (A_i - Abar) * sum_t m L_it, as Abar is
            # the token-weighted mean of A_i: one pass over the tokens. A is taken scaled.
            a = a * scale
            w = B.where(fin, lp.n_row, 0.0)
            n_tok = B.sum(w)
            abar = B.sum(w * a) / B.clip(n_tok, 1.0, None)
            raw["cov.num"] = B.sum(B.where(fin, (a - abar) * lp.rows, 0.0))
            raw["cov.den"], raw["cov.scale"] = n_tok, scale
        else:
            both = _both(B, lp, adv_tokens)
            if lp.finite and adv_tokens.finite:
                lv, av, n_tok = lp.xv, adv_tokens.xv, raw["len.sum"]
            else:
                lv, av = B.where(both, lp.xv, 0.0), B.where(both, adv_tokens.xv, 0.0)
                n_tok = B.cast(B.count(both), B.f64)
            if B.torch:
                cross = B.sum(lv * av, dtype=B.f64)
            else:
                av = av.astype(lv.dtype, copy=False)
                cross = np.einsum("ij,ij->i", lv, av).sum(dtype=np.float64)
            sa = B.sum(B.cast(B.sum(av, axis=1), B.f64))
            sl = B.sum(B.cast(B.sum(lv, axis=1), B.f64))
            raw["cov.num"] = cross - sl * sa / B.clip(n_tok, 1.0, None)
            raw["cov.den"], raw["cov.scale"] = n_tok, 1.0


def finalize_tokens(h: dict, out: Any, cfg: Any, n: int) -> None:
    if "len.sum" in h:
        out.put("length/mean", float(h["len.sum"]) / n)
        out.put("length/min", h["len.min"])
        out.put("length/max", h["len.max"])
    if "ent.sum" in h:
        out.count("entropy/nonfinite", h["ent.nonfinite"])
        out.ratio("entropy/mean", h["ent.sum"], h["ent.n"])
        has = float(h["ent.seq_n"]) > 0
        for name, v in zip(("entropy/seq_p10", "entropy/seq_p50", "entropy/seq_p90"), h["ent.seq_q"]):
            out.put(name, v, defined=has)
        out.histograms["entropy"] = uniform_dict(h, "h.entropy", cfg.spec("entropy"), cfg.quantiles,
                                                 tails=cfg.tail_values)
    if "cov.num" in h:
        out.count("logprobs/nonfinite", h["lp.nonfinite"])
        den = float(h["cov.den"])
        with np.errstate(all="ignore"):
            cov = float(h["cov.num"]) / den / float(h["cov.scale"]) if den else None
        out.put("entropy/cov_logp_adv", cov)
    if "h.adv_token.slots" in h:
        out.histograms["advantages/token"] = uniform_dict(h, "h.adv_token", cfg.spec("advantages/token"),
                                                          cfg.quantiles, tails=cfg.tail_values)
