"""Groups (prompts): rewards, the difficulty axis and pass@k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.stats.backend import finite_part, is_torch, pow2_scale
from fadewatch.stats.histogram import reduce_weighted, weighted_dict

__all__ = ["Groups", "group_structure", "reduce_rewards", "reduce_groups", "finalize_rewards",
           "finalize_groups"]


@dataclass
class Groups:
    """Integer group codes 0..ng-1 on the host, in the order of the sorted ids."""

    codes: np.ndarray       # int64 [N]
    sizes: np.ndarray       # int64 [ng]
    ids: Any                # the original id of each code (numpy [ng]), or None for a group size

    @property
    def ng(self) -> int:
        return len(self.sizes)

    def label(self, code: int) -> Any:
        if self.ids is None:
            return int(code)
        v = self.ids[code]
        return v.item() if isinstance(v, np.generic) else v


def group_structure(inp: Any) -> Groups | None:
    if inp.group_size is not None:
        g = inp.group_size
        return Groups(np.arange(inp.n, dtype=np.int64) // g, np.full(inp.n // g, g, np.int64), None)
    if inp.group_ids is None:
        return None
    x = inp.group_ids
    x = x.numpy() if is_torch(x) else np.asarray(x)
    try:
        ids, codes = np.unique(x, return_inverse=True)
    except TypeError:
        raise UsageError("group_ids: ids must be all ints or all strings, not a mix") from None
    codes = codes.reshape(-1).astype(np.int64)
    return Groups(codes, np.bincount(codes, minlength=len(ids)).astype(np.int64), ids)


def reduce_rewards(B: Any, raw: dict, r_in: Any, cfg: Any) -> tuple[Any, Any]:
    """Reward moments over the finite rewards (the others are counted and left out).

    Returns the success indicator s_i = [r_i >= threshold] as float64 (0 where r_i is not
    finite) and where r_i is finite.
    """
    r, fin = finite_part(B, r_in)
    raw["rew.nonfinite"] = B.count(~fin)
    nf = B.cast(B.count(fin), B.f64)
    scale = pow2_scale(B, B.amax(B.xp.abs(r)))
    rs = r * scale
    total = B.sum(rs)
    d = B.where(fin, rs - total / B.clip(nf, 1.0, None), 0.0)
    raw["rew.n"], raw["rew.scale"] = nf, scale
    raw["rew.sum"], raw["rew.c2"] = total, B.sum(d * d)
    raw["rew.min"] = B.amin(B.where(fin, r_in, float("inf")))
    raw["rew.max"] = B.amax(B.where(fin, r_in, float("-inf")))
    s = B.cast((r_in >= cfg.success_threshold) & fin, B.f64)
    raw["rew.succ"] = B.sum(s)
    return s, fin


def reduce_groups(B: Any, raw: dict, g: Groups, s: Any, fin: Any, adv: Any, cfg: Any) -> None:
    """Difficulty axis (needs successes s) and pass@k, for groups of any sizes.

    A group's size counts its rollouts with a finite reward (fin); a group without any is
    left out of every statistic here. adv: (advantages with non-finite ones set to 0, where
    they are finite, their scale) from ``reduce_advantages``, or None.
    """
    ng = g.ng
    codes = B.const(g.codes, B.i64)
    size = B.bincount(codes, ng, B.cast(fin, B.f64))
    present = size > 0
    raw["diff.ng"] = B.count(present)
    one = B.clip(size, 1.0, None)
    c = B.bincount(codes, ng, s)
    p = c / one
    # Left-open bins (e_j, e_j+1] from searchsorted, plus exact-0 and exact-1 bins at the ends.
    edges = B.const(cfg.difficulty_edges, B.f64)
    nb = len(cfg.difficulty_edges) + 1
    gbin = B.searchsorted(edges, p) + B.cast(p >= 1.0, B.i64)
    reduce_weighted(B, raw, "h.dgroups", gbin, nb, p, B.cast(present, B.f64), cfg.quantiles)
    raw["diff.p_sum"] = B.sum(p)
    if adv is not None:
        # Each group's share of m_S and m_F: divided by the rollouts with a finite advantage.
        a, fin_a, _ = adv
        tol, na = cfg.zero_tol, B.clip(B.cast(B.count(fin_a), B.f64), 1.0, None)
        wpos = B.bincount(codes, ng, B.where(a > tol, a, 0.0) / na)
        wneg = B.bincount(codes, ng, B.where(a < -tol, -a, 0.0) / na)
        reduce_weighted(B, raw, "h.dpos", gbin, nb, p, B.where(present, wpos, 0.0), cfg.quantiles)
        reduce_weighted(B, raw, "h.dneg", gbin, nb, p, B.where(present, wneg, 0.0), cfg.quantiles)
    # pass@k = mean over groups with n_g >= k of 1 - C(n-c, k) / C(n, k), the ratio taken as
    # prod_{j<k} (n - c - j) / (n - j): no large binomials, exact zero once n - c - j hits 0.
    for k in cfg.ks(int(g.sizes.max())):
        ok = size >= k
        j = B.cast(B.arange(k), B.f64)[None, :]
        num = B.clip(size[:, None] - c[:, None] - j, 0.0, None)
        den = B.clip(size[:, None] - j, 1.0, None)
        miss = B.xp.prod(num / den, 1)
        raw[f"pass.{k}"] = B.sum(B.where(ok, 1.0 - miss, 0.0))
        raw[f"pass.{k}.n"] = B.count(ok)
    # pass@G - pass@1 with each group's own G: share of groups solved at all minus solve rate.
    raw["pass.gap"] = B.sum(B.cast(c > 0, B.f64) - p)


def finalize_rewards(h: dict, out: Any, n: int) -> None:
    if "rew.sum" not in h:
        return
    out.count("rewards/nonfinite", h["rew.nonfinite"])
    nf = float(h["rew.n"])
    unit = 1.0 / float(h["rew.scale"])  # a power of two: exact
    out.ratio("reward/mean", float(h["rew.sum"]) * unit, nf)
    c2 = float(h["rew.c2"])
    out.put("reward/std", (c2 / nf) ** 0.5 * unit if nf else None)
    out.put("reward/min", h["rew.min"], defined=nf > 0)
    out.put("reward/max", h["rew.max"], defined=nf > 0)
    out.ratio("reward/success_rate", h["rew.succ"], nf)


def finalize_groups(h: dict, out: Any, cfg: Any) -> None:
    if "diff.p_sum" not in h:
        return
    ng = int(h["diff.ng"])
    edges, labels = cfg.difficulty_bins()
    groups = weighted_dict(h, "h.dgroups", edges, labels, cfg.quantiles)
    out.histograms["difficulty/groups"] = groups
    out.put("difficulty/n_groups", ng)
    out.ratio("difficulty/solve_rate", h["diff.p_sum"], ng)
    out.ratio("difficulty/no_signal_frac", groups["counts"][0] + groups["counts"][-1], ng)
    if "h.dpos.count" in h:
        mass = 0.0
        weighted = 0.0
        for key, name in (("h.dpos", "difficulty/mass_pos"), ("h.dneg", "difficulty/mass_neg")):
            hist = weighted_dict(h, key, edges, labels, cfg.quantiles)
            mass += float(h[key + ".count"])
            weighted += float(h[key + ".sum"])
            if all(np.isfinite(hist["counts"])) and np.isfinite(float(h[key + ".count"])):
                out.histograms[name] = hist
        # p*: the mass-weighted mean solve rate, mass = |A| of both signs.
        out.ratio("difficulty/peak", weighted, mass)
    for key in h:
        if key.startswith("pass.") and not key.endswith(".n") and key != "pass.gap":
            k = key[5:]
            out.ratio(f"pass@{k}", h[key], h[key + ".n"])
    out.ratio("diversity/pass_gap", h["pass.gap"], ng)
