"""What the run page charts: each scalar chart as data, and which logged keys go where.

Names follow docs/metrics.md. A key no chart claims (loss, kl, the user's own scalars,
counts) gets a small chart of its own under "Other scalars".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fadewatch.dashboard.figures.theme import NEG, NEUTRAL, POS, SERIES_COLORS

__all__ = ["Trace", "Chart", "CHARTS", "CHART_BY_ID", "HISTOGRAMS", "chart_keys", "pass_keys",
           "other_keys", "charts_for", "user_chart"]


@dataclass(frozen=True)
class Trace:
    key: str
    label: str
    color: str
    axis: str = "y"          # "y2": the right-hand axis
    dash: str | None = None


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    y_title: str
    traces: tuple[Trace, ...] = ()
    y2_title: str | None = None
    percent: bool = False       # y as a percentage (values in [0, 1])
    y_range: tuple[float, float] | None = None
    band: float | None = None   # shade |y| > band (the sign-imbalance alert zone)
    dynamic: str | None = None  # "pass": traces are the run's pass@k keys
    extra: dict = field(default_factory=dict)


C = SERIES_COLORS
CHARTS: tuple[Chart, ...] = (
    Chart("sign-mass", "Sign axis: positive and negative gradient mass", "mean |A| per rollout", (
        Trace("sign/m_pos", "m_S positive", POS),
        Trace("sign/m_neg", "m_F negative", NEG),
    )),
    Chart("sign-balance", "Sign balance b = (m_S − m_F) / (m_S + m_F)", "b", (
        Trace("sign/balance", "balance b", C[0]),
    ), y_range=(-1.05, 1.05), band=0.5),
    Chart("difficulty", "Difficulty axis: peak p*, no-signal groups, ESS/N", "share", (
        Trace("difficulty/peak", "peak p*", C[0]),
        Trace("difficulty/no_signal_frac", "no-signal groups", NEG),
        Trace("difficulty/ess_frac", "ESS / N", POS),
        Trace("difficulty/solve_rate", "solve rate", NEUTRAL, dash="dot"),
    ), percent=True, y_range=(0, 1.02)),
    Chart("entropy", "Entropy and Cov(log π, A)", "entropy (nats per token)", (
        Trace("entropy/mean", "mean token entropy", C[0]),
        Trace("entropy/cov_logp_adv", "Cov(log π, A)", NEG, axis="y2"),
    ), y2_title="Cov(log π, A)"),
    Chart("entropy-seq", "Entropy per completion: 10th, 50th, 90th percentile", "nats per token", (
        Trace("entropy/seq_p10", "p10", C[4]),
        Trace("entropy/seq_p50", "p50", C[0]),
        Trace("entropy/seq_p90", "p90", C[3]),
    )),
    Chart("diversity", "Diversity within groups", "share", (
        Trace("diversity/distinct_frac", "distinct completions", C[0]),
        Trace("diversity/distinct_1", "distinct-1", C[1]),
        Trace("diversity/distinct_2", "distinct-2", C[2]),
        Trace("diversity/pairwise_jaccard", "pairwise Jaccard", C[3], dash="dot"),
    ), percent=True, y_range=(0, 1.02)),
    Chart("pass", "pass@k", "pass rate", (
        Trace("diversity/pass_gap", "pass@G − pass@1", NEUTRAL, dash="dot"),
    ), percent=True, dynamic="pass"),
    Chart("adv-moments", "Advantages: mean, std, min, max", "A", (
        Trace("adv/mean", "mean", C[0]),
        Trace("adv/std", "std", C[1]),
        Trace("adv/min", "min", NEG, dash="dot"),
        Trace("adv/max", "max", POS, dash="dot"),
    )),
    Chart("adv-tails", "Tails: max |A| / std and excess kurtosis", "max |A| / std", (
        Trace("adv/max_abs_over_std", "max |A| / std", C[0]),
        Trace("adv/kurtosis", "excess kurtosis", C[1], axis="y2"),
        Trace("adv/frac_zero", "zero-advantage share", NEUTRAL, axis="y2", dash="dot"),
    ), y2_title="kurtosis, share"),
    Chart("geometry", "Weight geometry of the output head", "‖ΔW‖_F", (
        Trace("geometry/head_delta_norm", "‖ΔW‖_F", C[0]),
        Trace("geometry/rank1_frac", "rank-1 fraction", NEG, axis="y2"),
    ), y2_title="rank-1 fraction"),
    Chart("reward", "Reward", "reward", (
        Trace("reward/mean", "mean", C[0]),
        Trace("reward/min", "min", C[0], dash="dot"),
        Trace("reward/max", "max", C[0], dash="dot"),
        Trace("reward/success_rate", "success rate", POS, axis="y2"),
    ), y2_title="success rate"),
    Chart("length", "Completion length", "tokens", (
        Trace("length/mean", "mean", C[0]),
        Trace("length/min", "min", C[0], dash="dot"),
        Trace("length/max", "max", C[0], dash="dot"),
    )),
)
CHART_BY_ID = {c.id: c for c in CHARTS}

# Histogram names the run page reads (docs/metrics.md).
HISTOGRAMS = {
    "advantages": "advantages",
    "entropy": "entropy",
    "mass_pos": "difficulty/mass_pos",
    "mass_neg": "difficulty/mass_neg",
    "groups": "difficulty/groups",
}

_PASS = re.compile(r"pass@(\d+)$")
# Counted or derived elsewhere, not worth a chart of their own.
_QUIET = {"sign/n_pos", "sign/n_neg", "sign/n_zero", "difficulty/n_groups", "diversity/groups_used"}


def pass_keys(keys) -> list[str]:
    """pass@k keys ordered by k."""
    found = [k for k in keys if _PASS.match(k)]
    return sorted(found, key=lambda k: int(_PASS.match(k).group(1)))


def chart_keys() -> list[str]:
    """Every key a fixed chart plots."""
    return [t.key for c in CHARTS for t in c.traces]


def charts_for(keys) -> list[tuple[Chart, tuple[Trace, ...]]]:
    """The fixed charts with their traces, pass@k traces filled in from the run's keys."""
    out = []
    for chart in CHARTS:
        traces = chart.traces
        if chart.dynamic == "pass":
            ks = pass_keys(keys)
            traces = tuple(Trace(k, k, SERIES_COLORS[i % len(SERIES_COLORS)]) for i, k in enumerate(ks)) + traces
        out.append((chart, traces))
    return out


def other_keys(keys) -> list[str]:
    """Keys no fixed chart plots: loss, kl and the user's own scalars, sorted."""
    claimed = set(chart_keys()) | set(pass_keys(keys)) | _QUIET
    return sorted(k for k in keys if k not in claimed)


def user_chart(key: str) -> Chart:
    return Chart(f"user:{key}", key, key, (Trace(key, key, SERIES_COLORS[0]),))
