"""A plain reference for the statistics of METRICS.md, written from the formulas.

It shares nothing with fadewatch (numpy and the standard library only) and favours the
obvious over the fast: loops over groups and rollouts, sets for n-grams, math.comb for
pass@k. Inputs are host values as the caller's tensors hold them; NaN and Inf are left out
of each statistic and counted, as docs/metrics.md says. Undefined values are None.
"""

from __future__ import annotations

import decimal
import math
from collections import defaultdict
from itertools import combinations

import numpy as np

__all__ = ["advantage_stats", "reward_stats", "group_stats", "token_stats", "diversity_stats",
           "uniform_histogram", "linear_quantile", "rank1_fraction", "row_means"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def linear_quantile(values, q: float) -> float:
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    i = math.floor(pos)
    j = min(i + 1, len(xs) - 1)
    return xs[i] + (xs[j] - xs[i]) * (pos - i)


def uniform_histogram(values, lo: float, hi: float, bins: int) -> dict:
    """Half-open bins [lo + i w, lo + (i+1) w); below lo underflow, at or above hi overflow."""
    w = (hi - lo) / bins
    counts, under, over = [0] * bins, 0, 0
    for x in values:
        if x < lo:
            under += 1
        elif x >= hi:
            over += 1
        else:
            counts[min(int(math.floor((x - lo) / w)), bins - 1)] += 1
    return {"counts": counts, "underflow": under, "overflow": over, "count": len(values),
            "min": min(values) if values else None, "max": max(values) if values else None}


def _mean(xs):
    return math.fsum(xs) / len(xs) if xs else None


# Moments in 60-digit decimals: no overflow or underflow whatever the size of the values.
_CTX = decimal.Context(prec=60, Emax=10**6, Emin=-10**6)


def _dec(values) -> list:
    return [_CTX.create_decimal_from_float(float(x)) for x in values]


def _moments(values) -> tuple:
    """Mean, population variance and fourth central moment, as decimals."""
    d = _dec(values)
    n = len(d)
    mean = _CTX.divide(sum(d, decimal.Decimal(0)), n)
    dev = [_CTX.subtract(x, mean) for x in d]
    m2 = _CTX.divide(sum((_CTX.multiply(x, x) for x in dev), decimal.Decimal(0)), n)
    m4 = _CTX.divide(sum((_CTX.power(x, 4) for x in dev), decimal.Decimal(0)), n)
    return mean, m2, m4


def advantage_stats(adv, tol: float = 1e-6) -> dict:
    a = [float(x) for x in adv if math.isfinite(x)]
    n = len(a)
    out = {"advantages/nonfinite": len(adv) - n}
    if not n:
        return out
    mean, m2, m4 = _moments(a)
    std = _CTX.sqrt(m2)
    pos = _dec(x for x in a if x > tol)
    neg = _dec(x for x in a if x < -tol)
    m_s = _CTX.divide(sum(pos, decimal.Decimal(0)), n)
    m_f = _CTX.divide(-sum(neg, decimal.Decimal(0)), n)
    flat = max(a) == min(a)
    d = _dec(a)
    abs_sum = sum((abs(x) for x in d), decimal.Decimal(0))
    sq_sum = sum((_CTX.multiply(x, x) for x in d), decimal.Decimal(0))
    out.update({
        "adv/mean": float(mean), "adv/std": float(std), "adv/min": min(a), "adv/max": max(a),
        "adv/max_abs_over_std": None if flat else float(_CTX.divide(max(abs(x) for x in d), std)),
        "adv/kurtosis": None if flat else float(_CTX.divide(m4, _CTX.multiply(m2, m2))) - 3,
        "sign/n_pos": len(pos), "sign/n_neg": len(neg), "sign/n_zero": n - len(pos) - len(neg),
        "adv/frac_zero": (n - len(pos) - len(neg)) / n,
        "sign/m_pos": float(m_s), "sign/m_neg": float(m_f),
        "sign/balance": float(_CTX.divide(m_s - m_f, m_s + m_f)) if m_s + m_f > 0 else None,
        "difficulty/ess_frac": float(_CTX.divide(_CTX.multiply(abs_sum, abs_sum), sq_sum * n)) if sq_sum else None,
    })
    for q in QUANTILES:
        out[f"advantages@q{q:g}"] = linear_quantile(a, q)
    return out


def reward_stats(rewards, threshold: float = 0.5) -> dict:
    r = [float(x) for x in rewards if math.isfinite(x)]
    out = {"rewards/nonfinite": len(rewards) - len(r)}
    if not r:
        return out
    mean, m2, _ = _moments(r)
    out.update({"reward/mean": float(mean), "reward/std": float(_CTX.sqrt(m2)),
                "reward/min": min(r), "reward/max": max(r),
                "reward/success_rate": sum(x >= threshold for x in r) / len(r)})
    return out


def _difficulty_bin(p: float, edges) -> int:
    if p == 0.0:
        return 0
    if p == 1.0:
        return len(edges)
    return next(j for j in range(1, len(edges)) if edges[j - 1] < p <= edges[j])


def group_stats(rewards, adv, group_ids, threshold: float = 0.5, tol: float = 1e-6,
                edges=tuple(i / 10 for i in range(11))) -> dict:
    """Difficulty axis, pass@k and the pass gap; groups counted over finite rewards."""
    members = defaultdict(list)
    for i, g in enumerate(group_ids):
        members[g].append(i)
    finite_adv = [i for i in range(len(adv)) if math.isfinite(adv[i])] if adv is not None else []
    n_adv = len(finite_adv)
    groups = []
    for rows in members.values():
        ok = [i for i in rows if math.isfinite(rewards[i])]
        if not ok:
            continue
        c = sum(rewards[i] >= threshold for i in ok)
        p = c / len(ok)
        m_pos = m_neg = 0.0
        if adv is not None:
            m_pos = math.fsum(adv[i] for i in rows if math.isfinite(adv[i]) and adv[i] > tol) / max(n_adv, 1)
            m_neg = -math.fsum(adv[i] for i in rows if math.isfinite(adv[i]) and adv[i] < -tol) / max(n_adv, 1)
        groups.append({"n": len(ok), "c": c, "p": p, "pos": m_pos, "neg": m_neg})
    out: dict = {}
    if not groups:
        return out
    ng = len(groups)
    nb = len(edges) + 1
    out["difficulty/n_groups"] = ng
    out["difficulty/solve_rate"] = math.fsum(g["p"] for g in groups) / ng
    out["difficulty/no_signal_frac"] = sum(g["p"] in (0.0, 1.0) for g in groups) / ng
    counts = [0.0] * nb
    mass = {"pos": [0.0] * nb, "neg": [0.0] * nb}
    for g in groups:
        b = _difficulty_bin(g["p"], edges)
        counts[b] += 1
        mass["pos"][b] += g["pos"]
        mass["neg"][b] += g["neg"]
    for b in range(nb):
        out[f"difficulty/groups[{b}]"] = counts[b]
        if adv is not None:
            out[f"difficulty/mass_pos[{b}]"] = mass["pos"][b]
            out[f"difficulty/mass_neg[{b}]"] = mass["neg"][b]
    if adv is not None:
        total = math.fsum(g["pos"] + g["neg"] for g in groups)
        out["difficulty/peak"] = (math.fsum((g["pos"] + g["neg"]) * g["p"] for g in groups) / total
                                  if total > 0 else None)
    g_max = max(len(rows) for rows in members.values())
    ks = [1 << i for i in range(g_max.bit_length())]
    if ks[-1] != g_max:
        ks.append(g_max)
    for k in ks:
        values = [1 - math.comb(g["n"] - g["c"], k) / math.comb(g["n"], k) for g in groups if g["n"] >= k]
        out[f"pass@{k}"] = _mean(values)
    out["diversity/pass_gap"] = math.fsum((g["c"] > 0) - g["p"] for g in groups) / ng
    return out


def row_means(rows) -> list:
    """Per rollout mean of its finite real tokens: 0 without tokens, NaN with only non-finite."""
    out = []
    for row in rows:
        finite = [x for x in row if math.isfinite(x)]
        out.append(0.0 if not row else (math.fsum(finite) / len(finite) if finite else math.nan))
    return out


def token_stats(entropy_rows=None, logprob_rows=None, adv=None, adv_rows=None) -> dict:
    """Rows: per rollout, its real tokens (the mask already applied); adv per rollout or adv_rows."""
    out: dict = {}
    rows = entropy_rows if entropy_rows is not None else logprob_rows
    lengths = [len(r) for r in rows]
    out.update({"length/mean": _mean(lengths), "length/min": min(lengths), "length/max": max(lengths)})
    if entropy_rows is not None:
        flat = [x for r in entropy_rows for x in r]
        finite = [x for x in flat if math.isfinite(x)]
        out["entropy/nonfinite"] = len(flat) - len(finite)
        out["entropy/mean"] = _mean(finite)
        seq = [math.fsum(x for x in r if math.isfinite(x)) / sum(map(math.isfinite, r))
               for r in entropy_rows if any(map(math.isfinite, r))]
        for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
            out[f"entropy/seq_{name}"] = linear_quantile(seq, q) if seq else None
        out["entropy/values"] = finite
    if logprob_rows is not None and (adv is not None or adv_rows is not None):
        pairs = []
        for i, row in enumerate(logprob_rows):
            for t, lp in enumerate(row):
                a = adv_rows[i][t] if adv_rows is not None else adv[i]
                if math.isfinite(lp) and math.isfinite(a):
                    pairs.append((lp, a))
        flat = [x for r in logprob_rows for x in r]
        out["logprobs/nonfinite"] = sum(not math.isfinite(x) for x in flat)
        if pairs:
            ml, ma = _mean([p[0] for p in pairs]), _mean([p[1] for p in pairs])
            out["entropy/cov_logp_adv"] = math.fsum((lp - ml) * (a - ma) for lp, a in pairs) / len(pairs)
        else:
            out["entropy/cov_logp_adv"] = None
    return out


def _ngrams(tokens, n: int) -> list:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def diversity_stats(completions, group_ids, jaccard_n: int = 2) -> dict:
    """completions: per rollout a string (split on whitespace) or a sequence of token ids."""
    members = defaultdict(list)
    for i, g in enumerate(group_ids):
        members[g].append(i)
    frac, d = [], {1: [], 2: []}
    jac = []
    for rows in members.values():
        items = [completions[i] for i in rows]
        whole = [c if isinstance(c, str) else tuple(c) for c in items]
        tokens = [c.split() if isinstance(c, str) else list(c) for c in items]
        frac.append(len(set(whole)) / len(rows))
        for n in (1, 2):
            grams = [g for t in tokens for g in _ngrams(t, n)]
            if grams:
                d[n].append(len(set(grams)) / len(grams))
        sets = [set(_ngrams(t, jaccard_n)) for t in tokens]
        pairs = [len(a & b) / len(a | b) for a, b in combinations(sets, 2) if a | b]
        if pairs:
            jac.append(math.fsum(pairs) / len(pairs))
    return {"diversity/groups_used": len(members), "diversity/distinct_frac": _mean(frac),
            "diversity/distinct_1": _mean(d[1]), "diversity/distinct_2": _mean(d[2]),
            "diversity/pairwise_jaccard": _mean(jac)}


def rank1_fraction(delta: np.ndarray) -> float | None:
    s = np.linalg.svd(np.asarray(delta, dtype=np.float64), compute_uv=False)
    total = float((s ** 2).sum())
    return float(s[0] ** 2) / total if total > 0 else None
