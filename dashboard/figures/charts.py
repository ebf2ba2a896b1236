"""What the run page charts: each scalar chart as data, and which logged keys go where.

Metrics are named through the registry (fadewatch.protocol.metrics), whose ``chart`` field
says where each belongs. A key no chart claims (loss, kl, the user's own scalars) gets a
small chart of its own under "Other scalars"; the counts the registry charts nowhere, none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fadewatch.dashboard.figures.theme import NEG, NEUTRAL, POS, SERIES_COLORS
from fadewatch.protocol import metrics as m

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
        Trace(m.SIGN_M_POS, "m_S positive", POS),
        Trace(m.SIGN_M_NEG, "m_F negative", NEG),
    )),
    Chart("sign-balance", "Sign balance b = (m_S − m_F) / (m_S + m_F)", "b", (
        Trace(m.SIGN_BALANCE, "balance b", C[0]),
    ), y_range=(-1.05, 1.05), band=0.5),
    Chart("difficulty", "Difficulty axis: peak p*, no-signal groups, ESS/N", "share", (
        Trace(m.DIFFICULTY_PEAK, "peak p*", C[0]),
        Trace(m.DIFFICULTY_NO_SIGNAL_FRAC, "no-signal groups", NEG),
        Trace(m.DIFFICULTY_ESS_FRAC, "ESS / N", POS),
        Trace(m.DIFFICULTY_SOLVE_RATE, "solve rate", NEUTRAL, dash="dot"),
    ), percent=True, y_range=(0, 1.02)),
    Chart("entropy", "Entropy and Cov(log π, A)", "entropy (nats per token)", (
        Trace(m.ENTROPY_MEAN, "mean token entropy", C[0]),
        Trace(m.ENTROPY_COV_LOGP_ADV, "Cov(log π, A)", NEG, axis="y2"),
    ), y2_title="Cov(log π, A)"),
    Chart("entropy-seq", "Entropy per completion: 10th, 50th, 90th percentile", "nats per token", (
        Trace(m.ENTROPY_SEQ_P10, "p10", C[4]),
        Trace(m.ENTROPY_SEQ_P50, "p50", C[0]),
        Trace(m.ENTROPY_SEQ_P90, "p90", C[3]),
    )),
    Chart("diversity", "Diversity within groups", "share", (
        Trace(m.DIVERSITY_DISTINCT_FRAC, "distinct completions", C[0]),
        Trace(m.DIVERSITY_DISTINCT_1, "distinct-1", C[1]),
        Trace(m.DIVERSITY_DISTINCT_2, "distinct-2", C[2]),
        Trace(m.DIVERSITY_PAIRWISE_JACCARD, "pairwise Jaccard", C[3], dash="dot"),
    ), percent=True, y_range=(0, 1.02)),
    Chart("pass", "pass@k", "pass rate", (
        Trace(m.DIVERSITY_PASS_GAP, "pass@G − pass@1", NEUTRAL, dash="dot"),
    ), percent=True, dynamic="pass"),
    Chart("adv-moments", "Advantages: mean, std, min, max", "A", (
        Trace(m.ADV_MEAN, "mean", C[0]),
        Trace(m.ADV_STD, "std", C[1]),
        Trace(m.ADV_MIN, "min", NEG, dash="dot"),
        Trace(m.ADV_MAX, "max", POS, dash="dot"),
    )),
    Chart("adv-tails", "Tails: max |A| / std and excess kurtosis", "max |A| / std", (
        Trace(m.ADV_MAX_ABS_OVER_STD, "max |A| / std", C[0]),
        Trace(m.ADV_KURTOSIS, "excess kurtosis", C[1], axis="y2"),
        Trace(m.ADV_FRAC_ZERO, "zero-advantage share", NEUTRAL, axis="y2", dash="dot"),
    ), y2_title="kurtosis, share"),
    Chart("geometry", "Weight geometry of the output head", "‖ΔW‖_F", (
        Trace(m.GEOMETRY_HEAD_DELTA_NORM, "‖ΔW‖_F", C[0]),
        Trace(m.GEOMETRY_RANK1_FRAC, "rank-1 fraction", NEG, axis="y2"),
    ), y2_title="rank-1 fraction"),
    Chart("reward", "Reward", "reward", (
        Trace(m.REWARD_MEAN, "mean", C[0]),
        Trace(m.REWARD_MIN, "min", C[0], dash="dot"),
        Trace(m.REWARD_MAX, "max", C[0], dash="dot"),
        Trace(m.REWARD_SUCCESS_RATE, "success rate", POS, axis="y2"),
    ), y2_title="success rate"),
    Chart("length", "Completion length", "tokens", (
        Trace(m.LENGTH_MEAN, "mean", C[0]),
        Trace(m.LENGTH_MIN, "min", C[0], dash="dot"),
        Trace(m.LENGTH_MAX, "max", C[0], dash="dot"),
    )),
)
CHART_BY_ID = {c.id: c for c in CHARTS}

# Histogram names the run page reads.
HISTOGRAMS = {
    "advantages": m.ADVANTAGES,
    "entropy": m.ENTROPY,
    "mass_pos": m.DIFFICULTY_MASS_POS,
    "mass_neg": m.DIFFICULTY_MASS_NEG,
    "groups": m.DIFFICULTY_GROUPS,
}

# Scalars the registry charts nowhere (counts, or derived elsewhere): no chart of their own.
_QUIET = {e.name for e in m.metrics("scalar") if e.chart is None and not e.family}


def pass_keys(keys) -> list[str]:
    """pass@k keys ordered by k."""
    return sorted((k for k in keys if m.pass_k(k) is not None), key=m.pass_k)


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
