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


def _masked_rows(B: Any, x: Any, view: TokenView) -> tuple[Any, Any, bool]:
    """x with padding set to 0, its float64 row sums, and whether all of x is finite.

    On the host a multiply by the 0/1 mask is much cheaper than a select; the select is
    the fallback when x holds NaN or Inf (in a real token or in the padding).
    """
    if view.mf is None:
        xv = x
    elif B.torch:
        xv = B.where(view.valid, x, 0.0)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # Inf * 0 in padding: handled below
            xv = x * (view.mf if x.dtype == np.float32 else view.mf.astype(x.dtype))
            rows = xv.sum(axis=1, dtype=x.dtype).astype(np.float64)
        if np.isfinite(rows.sum()):
            return xv, rows, True
        xv = np.where(view.valid, x, 0)
        return xv, xv.sum(axis=1, dtype=np.float64), False
    rows = B.cast(B.sum(xv, axis=1), B.f64)
    return xv, rows, B.torch or bool(np.isfinite(rows.sum()))


def reduce_token_advantages(B: Any, inp: Any, view: TokenView, raw: dict) -> tuple[Any, Any]:
    """Token-level advantages: their histogram; returns the per-rollout masked mean
    (float64 [N], 0 for a rollout without tokens) and the masked token values."""
    a = _dense(B, inp, "advantages", inp.advantages)
    av, rows, finite = _masked_rows(B, a, view)
    reduce_uniform(B, raw, "h.adv_token", a, inp.config.spec("advantages/token"), view.valid,
                   view.mf, av, B.sum(rows), finite)
    return B.where(view.lengths > 0, rows / B.clip(view.lengths, 1.0, None), 0.0), av


def reduce_tokens(B: Any, inp: Any, view: TokenView, raw: dict, adv: Any, adv_tokens: Any) -> None:
    """Lengths, entropy and Cov(log pi, A); adv is per rollout, adv_tokens per token or None."""
    cfg = inp.config
    lengths = view.lengths
    raw["len.sum"], raw["len.min"], raw["len.max"] = B.sum(lengths), B.amin(lengths), B.amax(lengths)
    n_tok = raw["len.sum"]
    if inp.entropy is not None:
        h = _dense(B, inp, "entropy", inp.entropy)
        hv, rows, finite = _masked_rows(B, h, view)
        raw["ent.sum"] = B.sum(rows)
        has = lengths > 0
        seq = B.where(has, rows / B.clip(lengths, 1.0, None), 0.0)
        raw["ent.seq_q"], raw["ent.seq_n"] = masked_quantiles(B, seq, has, (0.1, 0.5, 0.9))
        reduce_uniform(B, raw, "h.entropy", h, cfg.spec("entropy"), view.valid, view.mf, hv,
                       raw["ent.sum"], finite)
    if inp.logprobs is not None and adv is not None:
        lp = _dense(B, inp, "logprobs", inp.logprobs)
        lv, rows, _ = _masked_rows(B, lp, view)
        if adv_tokens is None:
            # sum_it m (L - Lbar)(A_i - Abar) = sum_i (A_i - Abar) * sum_t m L_it, as
            # Abar is the token-weighted mean of A_i: one pass over the tokens.
            abar = B.sum(lengths * adv) / B.clip(n_tok, 1.0, None)
            raw["cov.num"] = B.sum((adv - abar) * rows)
        else:
            if B.torch:
                cross = B.sum(lv * adv_tokens, dtype=B.f64)
            else:
                av = adv_tokens.astype(lv.dtype, copy=False)
                cross = np.einsum("ij,ij->i", lv, av).sum(dtype=np.float64)
            sa = B.sum(B.cast(B.sum(adv_tokens, axis=1), B.f64))
            raw["cov.num"] = cross - B.sum(rows) * sa / B.clip(n_tok, 1.0, None)
        raw["cov.den"] = n_tok


def finalize_tokens(h: dict, out: Any, cfg: Any, n: int) -> None:
    if "len.sum" in h:
        out.put("length/mean", float(h["len.sum"]) / n)
        out.put("length/min", h["len.min"])
        out.put("length/max", h["len.max"])
    if "ent.sum" in h:
        n_tok = float(h["len.sum"])
        out.ratio("entropy/mean", h["ent.sum"], n_tok)
        has = float(h["ent.seq_n"]) > 0
        for name, v in zip(("entropy/seq_p10", "entropy/seq_p50", "entropy/seq_p90"), h["ent.seq_q"]):
            out.put(name, v, defined=has)
        out.histograms["entropy"] = uniform_dict(h, "h.entropy", cfg.spec("entropy"), cfg.quantiles)
    if "cov.num" in h:
        out.ratio("entropy/cov_logp_adv", h["cov.num"], h["cov.den"])
    if "h.adv_token.slots" in h:
        out.histograms["advantages/token"] = uniform_dict(h, "h.adv_token", cfg.spec("advantages/token"),
                                                          cfg.quantiles)
