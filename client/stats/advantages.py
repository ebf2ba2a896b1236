"""Advantage distribution and the sign axis (positive and negative gradient mass).

Rollouts whose advantage is NaN or Inf are counted (``advantages/nonfinite``) and left out;
every statistic below is over the others. Moments are taken of the advantages times a power
of two (``pow2_scale``), so that no sum or square overflows or underflows for finite input.
"""

from __future__ import annotations

from typing import Any

from fadewatch.stats.backend import finite_part, pow2_scale
from fadewatch.stats.histogram import masked_quantiles, reduce_uniform, uniform_dict

__all__ = ["reduce_advantages", "finalize_advantages"]


def reduce_advantages(B: Any, raw: dict, adv_in: Any, cfg: Any) -> tuple[Any, Any, Any]:
    """adv_in: one float64 advantage per rollout, on the data's device.

    Returns the advantages with non-finite ones set to 0, where they are finite, and the
    scale (a power of two) of the scaled copy the moments were taken of.
    """
    adv, fin = finite_part(B, adv_in)
    raw["adv.nonfinite"] = B.count(~fin)
    nf = B.cast(B.count(fin), B.f64)
    absa = B.xp.abs(adv)
    scale = pow2_scale(B, B.amax(absa))
    a = adv * scale
    total = B.sum(a)
    d = B.where(fin, a - total / B.clip(nf, 1.0, None), 0.0)
    d2 = d * d
    raw["adv.n"], raw["adv.scale"] = nf, scale
    raw["adv.sum"], raw["adv.c2"], raw["adv.c4"] = total, B.sum(d2), B.sum(d2 * d2)
    raw["adv.min"] = B.amin(B.where(fin, adv_in, float("inf")))
    raw["adv.max"] = B.amax(B.where(fin, adv_in, float("-inf")))
    abs_a = absa * scale
    raw["adv.abs_max"], raw["adv.abs_sum"], raw["adv.sq_sum"] = B.amax(abs_a), B.sum(abs_a), B.sum(a * a)
    pos, neg = adv > cfg.zero_tol, adv < -cfg.zero_tol
    raw["sign.pos_sum"] = B.sum(B.where(pos, a, 0.0))
    raw["sign.neg_sum"] = B.sum(B.where(neg, -a, 0.0))
    raw["sign.n_pos"], raw["sign.n_neg"] = B.count(pos), B.count(neg)
    reduce_uniform(B, raw, "h.adv", adv_in, cfg.spec("advantages"), valid=fin)
    raw["h.adv.q"], _ = masked_quantiles(B, adv_in, fin, cfg.quantiles)
    return adv, fin, scale


def finalize_advantages(h: dict, out: Any, cfg: Any, n: int) -> None:
    if "adv.sum" not in h:
        return
    # Token-level advantages count their non-finite tokens, per-rollout ones their rollouts.
    out.count("advantages/nonfinite", h.get("adv_token.nonfinite", h["adv.nonfinite"]))
    nf = float(h["adv.n"])
    unit = 1.0 / float(h["adv.scale"])  # a power of two: exact
    c2, c4 = float(h["adv.c2"]), float(h["adv.c4"])
    out.ratio("adv/mean", float(h["adv.sum"]) * unit, nf)
    std_s = (c2 / nf) ** 0.5 if nf else None  # in scaled units, about 1
    out.put("adv/std", None if std_s is None else std_s * unit)
    out.put("adv/min", h["adv.min"], defined=nf > 0)
    out.put("adv/max", h["adv.max"], defined=nf > 0)
    # A spread at rounding level (all advantages equal up to float error) counts as none,
    # so the ratios below are None rather than astronomically large.
    abs_max = float(h["adv.abs_max"])
    flat = std_s is None or std_s <= 1e-12 * abs_max
    out.ratio("adv/max_abs_over_std", abs_max, 0.0 if flat else std_s)
    out.ratio("adv/kurtosis", c4 * nf, 0.0 if flat else c2 * c2, offset=-3.0)
    n_pos, n_neg = int(h["sign.n_pos"]), int(h["sign.n_neg"])
    n_zero = int(nf) - n_pos - n_neg
    out.ratio("adv/frac_zero", n_zero, nf)
    sp, sn = float(h["sign.pos_sum"]), float(h["sign.neg_sum"])
    out.ratio("sign/m_pos", sp * unit, nf)
    out.ratio("sign/m_neg", sn * unit, nf)
    out.ratio("sign/balance", sp - sn, sp + sn)
    out.put("sign/n_pos", n_pos)
    out.put("sign/n_neg", n_neg)
    out.put("sign/n_zero", n_zero)
    # ESS = (sum |A|)^2 / sum A^2, reported as a share of N (scale-free: scaled sums suffice).
    out.ratio("difficulty/ess_frac", float(h["adv.abs_sum"]) ** 2, float(h["adv.sq_sum"]) * nf)
    out.histograms["advantages"] = uniform_dict(h, "h.adv", cfg.spec("advantages"), cfg.quantiles,
                                                exact_q=h["h.adv.q"])
