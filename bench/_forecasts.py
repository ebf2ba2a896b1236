"""Forecast models side by side on the tune half: the served one (the early-warning rule's trend
forecast) against the mechanism-calibrated drift model of the entropy-mechanism literature.

Mechanism model: the first-order entropy drift dH ~ eta [(m_S - m_F) H - Cov(log pi, A)]
(Cui et al., arXiv 2505.22617; the FADE paper's entropy analysis), calibrated online against
the run's own observed drift: over the last `window` steps, the 10-step drift of the
smoothed entropy is regressed on that term (with an intercept, the drift the term does not
explain), and the fit gives the drift now with its standard error (inflated for the overlap of
10-step differences). It warns, like the served rule, when the optimistic edge of its interval
meets the collapse level within the horizon, for `for_steps` steps in a row.
"""

from __future__ import annotations

import math
import statistics

__all__ = ["mechanism_first_warning"]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def mechanism_first_warning(rows: list[dict], window_end: int, *, window: int = 50, lag: int = 10,
                            smooth: int = 10, z: float = 1.0, horizon: int = 65, min_t: float = 2.0,
                            min_drop: float = 0.1, for_steps: int = 6) -> int | None:
    """The first step the mechanism model warns at, or None."""
    steps, h, u = [], [], []
    for r in rows:
        if r["step"] >= window_end:
            break
        s = r["scalars"]
        if s.get("entropy/mean") is None:
            continue
        ent = s["entropy/mean"]
        steps.append(r["step"])
        h.append(ent)
        u.append((s.get("sign/m_pos", 0.0) - s.get("sign/m_neg", 0.0)) * ent - s.get("entropy/cov_logp_adv", 0.0))
    if len(h) < 10:
        return None
    base = _mean(h[:10])
    level = 0.3 * base
    hs = [_mean(h[max(0, i - smooth + 1):i + 1]) for i in range(len(h))]
    us = [_mean(u[max(0, i - smooth + 1):i + 1]) for i in range(len(u))]
    run = 0
    for i in range(10 + lag + window, len(h)):
        d = [(hs[j] - hs[j - lag]) / lag for j in range(i - window + 1, i + 1)]
        x = [us[j - lag] for j in range(i - window + 1, i + 1)]
        mx, md = _mean(x), _mean(d)
        sxx = sum((a - mx) ** 2 for a in x)
        k = sum((a - mx) * (b - md) for a, b in zip(x, d)) / sxx if sxx > 1e-12 else 0.0
        resid = [b - md - k * (a - mx) for a, b in zip(x, d)]
        s2 = sum(e * e for e in resid) / (window - 2) * lag
        drift = md + k * (us[i] - mx)
        se = math.sqrt(s2 * (1 / window + ((us[i] - mx) ** 2 / sxx if sxx > 1e-12 else 0.0)))
        edge = drift + z * se
        trips = (hs[i] <= (1 - min_drop) * base and drift < 0 and drift / se <= -min_t if se > 0 else False)
        trips = trips and (hs[i] <= level or (edge < 0 and (hs[i] - level) / -edge <= horizon))
        run = run + 1 if trips else 0
        if run >= for_steps:
            return steps[i]
    return None


def compare(runs: list[dict], served: dict[str, int | None]) -> list[str]:
    """Rows of recall, lead and false alarms for both models; `served`: run name -> first firing."""
    lines = ["| forecast model | collapses warned | lead, steps (median; min) | false alarms on healthy runs |",
             "|---|---|---|---|"]
    for name, first_of in (("served: cautious trend, early edge of the interval", lambda r: served.get(r["name"])),
                           ("mechanism: calibrated first-order drift",
                            lambda r: mechanism_first_warning(r["rows"], r["window"]))):
        leads, cases, false, healthy = [], 0, [], 0
        for run in runs:
            first = first_of(run)
            if run["label"] == "healthy":
                healthy += 1
                if first is not None:
                    false.append(run["name"])
            elif run["label"] == "problem" and "collapse" in run["problems"]:
                cases += 1
                if first is not None:
                    leads.append(run["problems"]["collapse"] - first)
        lead = f"{statistics.median(leads):+g}; {min(leads):+d}" if leads else "-"
        lines.append(f"| {name} | {len(leads)}/{cases} | {lead} | {len(false)}/{healthy}"
                     + (f" ({', '.join(false)})" if false else "") + " |")
    return lines
