"""Advantage distribution and the sign axis (positive and negative gradient mass)."""

from __future__ import annotations

import math
from typing import Any

from fadewatch.stats.histogram import masked_quantiles, reduce_uniform, uniform_dict

__all__ = ["reduce_advantages", "finalize_advantages"]


def reduce_advantages(B: Any, raw: dict, adv: Any, cfg: Any) -> None:
    """adv: one float64 advantage per rollout, on the data's device."""
    n = adv.shape[0]
    total = B.sum(adv)
    d = adv - total / n
    d2 = d * d
    raw["adv.sum"], raw["adv.c2"], raw["adv.c4"] = total, B.sum(d2), B.sum(d2 * d2)
    raw["adv.min"], raw["adv.max"] = B.amin(adv), B.amax(adv)
    absa = B.xp.abs(adv)
    raw["adv.abs_max"], raw["adv.abs_sum"], raw["adv.sq_sum"] = B.amax(absa), B.sum(absa), B.sum(adv * adv)
    pos, neg = adv > cfg.zero_tol, adv < -cfg.zero_tol
    raw["sign.pos_sum"] = B.sum(B.where(pos, adv, 0.0))
    raw["sign.neg_sum"] = B.sum(B.where(neg, -adv, 0.0))
    raw["sign.n_pos"], raw["sign.n_neg"] = B.count(pos), B.count(neg)
    reduce_uniform(B, raw, "h.adv", adv, cfg.spec("advantages"))
    raw["h.adv.q"], _ = masked_quantiles(B, adv, None, cfg.quantiles)


def finalize_advantages(h: dict, out: Any, cfg: Any, n: int) -> None:
    if "adv.sum" not in h:
        return
    c2, c4 = float(h["adv.c2"]), float(h["adv.c4"])
    out.put("adv/mean", float(h["adv.sum"]) / n)
    std = math.sqrt(c2 / n) if c2 >= 0 else float("nan")
    out.put("adv/std", std)
    out.put("adv/min", h["adv.min"])
    out.put("adv/max", h["adv.max"])
    # A spread at rounding level (all advantages equal up to float error) counts as none,
    # so the ratios below are None rather than astronomically large.
    flat = std <= 1e-12 * float(h["adv.abs_max"])
    out.ratio("adv/max_abs_over_std", h["adv.abs_max"], 0.0 if flat else std)
    out.ratio("adv/kurtosis", c4 * n, 0.0 if flat else c2 * c2, offset=-3.0)
    n_pos, n_neg = int(h["sign.n_pos"]), int(h["sign.n_neg"])
    n_zero = n - n_pos - n_neg
    out.put("adv/frac_zero", n_zero / n)
    sp, sn = float(h["sign.pos_sum"]), float(h["sign.neg_sum"])
    if not math.isfinite(float(h["adv.sum"])):
        sp = sn = float("nan")  # a NaN advantage is in neither sum: do not report them as clean
    out.put("sign/m_pos", sp / n)
    out.put("sign/m_neg", sn / n)
    out.ratio("sign/balance", sp - sn, sp + sn)
    out.put("sign/n_pos", n_pos)
    out.put("sign/n_neg", n_neg)
    out.put("sign/n_zero", n_zero)
    # ESS = (sum |A|)^2 / sum A^2, reported as a share of N.
    out.ratio("difficulty/ess_frac", float(h["adv.abs_sum"]) ** 2, float(h["adv.sq_sum"]) * n)
    out.histograms["advantages"] = uniform_dict(h, "h.adv", cfg.spec("advantages"), cfg.quantiles,
                                                exact_q=h["h.adv.q"])
