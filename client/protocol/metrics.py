"""The metric registry: every scalar and histogram the hook emits, with what it means.

Each name is a module constant (``ENTROPY_MEAN == "entropy/mean"``); code that reads a
metric (the dashboard's charts, the default alert rules) names it through the constant,
so a renamed metric breaks at import, not silently. ``metric(name)`` gives the entry:

    >>> metric(SIGN_BALANCE).bad
    'both'
    >>> metric("pass@8").name       # families match by pattern
    'pass@{k}'

Fields: ``meaning`` (docs/metrics.md has the formulas), ``unit``, ``chart`` (the run
page's chart or heatmap that shows it; ``OTHER`` a small chart of its own under "Other
scalars"; None not charted), ``bad`` (the direction that signals trouble: up, down, both,
none) and ``source`` (``stats``: ``fadewatch.stats`` from the raw batch; ``trl``: the TRL
integration).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from fadewatch.errors import UsageError

__all__ = ["Metric", "OTHER", "metric", "find", "metrics", "pass_at", "pass_k", "in_chart"]

Bad = Literal["up", "down", "both", "none"]
OTHER = "other"  # a small chart of its own under "Other scalars"


@dataclass(frozen=True)
class Metric:
    name: str  # the name, or a family's pattern with one {field}, e.g. "pass@{k}"
    kind: Literal["scalar", "histogram"]
    meaning: str
    unit: str
    chart: str | None
    bad: Bad
    source: Literal["stats", "trl"] = "stats"

    @property
    def family(self) -> bool:
        return "{" in self.name


_FIXED: dict[str, Metric] = {}
_FAMILIES: dict[str, tuple[re.Pattern[str], Metric]] = {}  # pattern name -> (regex, entry)


def _add(kind, name: str, meaning: str, unit: str, chart: str | None, bad: Bad, source: str = "stats") -> str:
    entry = Metric(name, kind, meaning, unit, chart, bad, source)
    if entry.family:
        head, field, tail = re.fullmatch(r"(.*)\{(\w+)\}(.*)", name).groups()
        regex = re.compile(f"{re.escape(head)}(?P<{field}>[1-9][0-9]*){re.escape(tail)}")
        _FAMILIES[name] = (regex, entry)
    elif name in _FIXED:
        raise ValueError(f"metric {name!r} is registered twice")
    else:
        _FIXED[name] = entry
    return name


def _scalar(*args, **kw) -> str:
    return _add("scalar", *args, **kw)


def _histogram(*args, **kw) -> str:
    return _add("histogram", *args, **kw)


# ---- advantages --------------------------------------------------------------------------
ADV_MEAN = _scalar("adv/mean", "mean of the per-rollout advantages A_i", "advantage", "adv-moments", "none")
ADV_STD = _scalar("adv/std", "population std of the advantages; 0 means no learning signal", "advantage",
                  "adv-moments", "down")
ADV_MIN = _scalar("adv/min", "smallest advantage", "advantage", "adv-moments", "none")
ADV_MAX = _scalar("adv/max", "largest advantage", "advantage", "adv-moments", "none")
ADV_MAX_ABS_OVER_STD = _scalar("adv/max_abs_over_std", "max |A_i| / std(A): one rollout dominating the batch",
                               "ratio", "adv-tails", "up")
ADV_KURTOSIS = _scalar("adv/kurtosis", "excess kurtosis of the advantages (0 for a normal distribution)",
                       "ratio", "adv-tails", "up")
ADV_FRAC_ZERO = _scalar("adv/frac_zero", "share of rollouts with a zero advantage: compute that teaches nothing",
                        "share", "adv-tails", "up")
ADVANTAGES = _histogram("advantages", "per-rollout advantages A_i, uniform bins", "advantage",
                        "advantages-heatmap", "none")
ADVANTAGES_TOKEN = _histogram("advantages/token", "token-level advantages over real tokens", "advantage",
                              None, "none")

# ---- sign axis ---------------------------------------------------------------------------
SIGN_M_POS = _scalar("sign/m_pos", "positive gradient mass m_S: (1/N) sum of the positive A_i",
                     "|A| per rollout", "sign-mass", "none")
SIGN_M_NEG = _scalar("sign/m_neg", "negative gradient mass m_F: (1/N) sum of |A_i| over negative A_i",
                     "|A| per rollout", "sign-mass", "none")
SIGN_BALANCE = _scalar("sign/balance", "(m_S - m_F) / (m_S + m_F): > 0 collapses entropy, < 0 the head geometry",
                       "ratio in [-1, 1]", "sign-balance", "both")
SIGN_N_POS = _scalar("sign/n_pos", "rollouts with a positive advantage", "rollouts", None, "none")
SIGN_N_NEG = _scalar("sign/n_neg", "rollouts with a negative advantage", "rollouts", None, "none")
SIGN_N_ZERO = _scalar("sign/n_zero", "rollouts with a zero advantage", "rollouts", None, "up")

# ---- difficulty axis ---------------------------------------------------------------------
DIFFICULTY_N_GROUPS = _scalar("difficulty/n_groups", "groups (prompts) in the step", "groups", None, "none")
DIFFICULTY_SOLVE_RATE = _scalar("difficulty/solve_rate", "mean over groups of the group's success rate p_g",
                                "share", "difficulty", "down")
DIFFICULTY_NO_SIGNAL_FRAC = _scalar("difficulty/no_signal_frac", "share of groups all solved or all failed",
                                    "share", "difficulty", "up")
DIFFICULTY_PEAK = _scalar("difficulty/peak", "p*: the |A|-weighted mean solve rate, where the update's weight sits",
                          "share", "difficulty", "none")
DIFFICULTY_ESS_FRAC = _scalar("difficulty/ess_frac", "effective sample size of the update as a share of N",
                              "share", "difficulty", "down")
DIFFICULTY_GROUPS = _histogram("difficulty/groups", "groups per difficulty (solve-rate) bin", "groups",
                               "difficulty-heatmap", "none")
DIFFICULTY_MASS_POS = _histogram("difficulty/mass_pos", "positive mass m_S per difficulty bin", "|A| per rollout",
                                 "difficulty-heatmap", "none")
DIFFICULTY_MASS_NEG = _histogram("difficulty/mass_neg", "negative mass m_F per difficulty bin", "|A| per rollout",
                                 "difficulty-heatmap", "none")

# ---- rewards and pass@k ------------------------------------------------------------------
REWARD_MEAN = _scalar("reward/mean", "mean reward", "reward", "reward", "down")
REWARD_STD = _scalar("reward/std", "population std of the rewards", "reward", OTHER, "none")
REWARD_MIN = _scalar("reward/min", "smallest reward", "reward", "reward", "none")
REWARD_MAX = _scalar("reward/max", "largest reward", "reward", "reward", "none")
REWARD_SUCCESS_RATE = _scalar("reward/success_rate", "share of rollouts with reward >= success_threshold",
                              "share", "reward", "down")
PASS_AT_K = _scalar("pass@{k}", "unbiased pass@k, averaged over groups with at least k rollouts", "share",
                    "pass", "down")
DIVERSITY_PASS_GAP = _scalar("diversity/pass_gap", "pass@G - pass@1 with each group's own G; shrinks as "
                             "diversity collapses", "share", "pass", "down")

# ---- length and entropy ------------------------------------------------------------------
LENGTH_MEAN = _scalar("length/mean", "mean completion length", "tokens", "length", "none")
LENGTH_MIN = _scalar("length/min", "shortest completion", "tokens", "length", "none")
LENGTH_MAX = _scalar("length/max", "longest completion", "tokens", "length", "none")
ENTROPY_MEAN = _scalar("entropy/mean", "mean token entropy over real tokens", "nats per token", "entropy", "down")
ENTROPY_SEQ_P10 = _scalar("entropy/seq_p10", "10th percentile of the completions' mean token entropy",
                          "nats per token", "entropy-seq", "down")
ENTROPY_SEQ_P50 = _scalar("entropy/seq_p50", "median of the completions' mean token entropy", "nats per token",
                          "entropy-seq", "down")
ENTROPY_SEQ_P90 = _scalar("entropy/seq_p90", "90th percentile of the completions' mean token entropy",
                          "nats per token", "entropy-seq", "down")
ENTROPY_COV_LOGP_ADV = _scalar("entropy/cov_logp_adv", "Cov(log pi, A) over real tokens: persistently positive "
                               "predicts falling entropy", "nats x advantage", "entropy", "up")
ENTROPY = _histogram("entropy", "token entropy over real tokens, uniform bins", "nats per token",
                     "entropy-heatmap", "down")

# ---- diversity ---------------------------------------------------------------------------
DIVERSITY_GROUPS_USED = _scalar("diversity/groups_used", "groups the diversity figures were computed on",
                                "groups", None, "none")
DIVERSITY_DISTINCT_FRAC = _scalar("diversity/distinct_frac", "share of distinct completions within a group",
                                  "share", "diversity", "down")
DIVERSITY_DISTINCT_1 = _scalar("diversity/distinct_1", "distinct unigrams / all unigrams within a group",
                               "share", "diversity", "down")
DIVERSITY_DISTINCT_2 = _scalar("diversity/distinct_2", "distinct bigrams / all bigrams within a group",
                               "share", "diversity", "down")
DIVERSITY_PAIRWISE_JACCARD = _scalar("diversity/pairwise_jaccard", "mean n-gram Jaccard overlap of two "
                                     "completions of a group", "share", "diversity", "up")

# ---- weight geometry (run.watch_head) ----------------------------------------------------
GEOMETRY_HEAD_DELTA_NORM = _scalar("geometry/head_delta_norm", "||W_t - W_0||_F of the output head",
                                   "Frobenius norm", "geometry", "none")
GEOMETRY_RANK1_FRAC = _scalar("geometry/rank1_frac", "sigma_1(dW)^2 / ||dW||_F^2: share of the head update in "
                              "one direction", "share", "geometry", "up")

# ---- non-finite inputs (counted, left out of the statistics, and flagged: the nonfinite rule fires)
ADVANTAGES_NONFINITE = _scalar("advantages/nonfinite", "advantages that were NaN or infinite (rollouts, or real "
                               "tokens when given per token)", "count", None, "up")
REWARDS_NONFINITE = _scalar("rewards/nonfinite", "rewards that were NaN or infinite", "count", None, "up")
ENTROPY_NONFINITE = _scalar("entropy/nonfinite", "token entropies that were NaN or infinite (real tokens)", "count",
                            None, "up")
LOGPROBS_NONFINITE = _scalar("logprobs/nonfinite", "token log-probabilities that were NaN or infinite (real tokens)",
                             "count", None, "up")

# ---- the TRL integration's own scalars ---------------------------------------------------
TRAIN_LOSS = _scalar("train/loss", "the trainer's loss, averaged over processes", "loss", OTHER, "none", "trl")
TRAIN_GRAD_NORM = _scalar("train/grad_norm", "gradient norm before clipping", "norm", OTHER, "up", "trl")
TRAIN_LEARNING_RATE = _scalar("train/learning_rate", "the optimizer's learning rate", "rate", OTHER, "none", "trl")
TRAIN_EPOCH = _scalar("train/epoch", "epochs done, fractional", "epochs", OTHER, "none", "trl")


def find(name: str) -> Metric | None:
    """The registry's entry for ``name`` (a family's for ``pass@8`` or ``pass@{k}``), or None."""
    found = _FIXED.get(name)
    if found is not None:
        return found
    if name in _FAMILIES:
        return _FAMILIES[name][1]
    for regex, entry in _FAMILIES.values():
        if regex.fullmatch(name):
            return entry
    return None


def metric(name: str) -> Metric:
    """The entry for ``name``; raises UsageError, suggesting close names, when there is none."""
    found = find(name) if isinstance(name, str) else None
    if found is None:
        close = difflib.get_close_matches(str(name), list(_FIXED), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"{name!r} is not a metric fadewatch emits{hint} (see fadewatch.protocol.metrics)")
    return found


def metrics(kind: str | None = None) -> Iterator[Metric]:
    """Every entry (fixed names, then families), optionally of one kind."""
    for entry in [*_FIXED.values(), *(e for _, e in _FAMILIES.values())]:
        if kind is None or entry.kind == kind:
            yield entry


def in_chart(chart: str) -> list[str]:
    """Names (and family patterns) the registry places in ``chart``, in registry order."""
    return [m.name for m in metrics() if m.chart == chart]


def pass_at(k: int) -> str:
    """The name of pass@k."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k of pass@k must be a positive int, got {k!r}")
    return PASS_AT_K.format(k=k)


def pass_k(name: str) -> int | None:
    """k of a pass@k name, or None for any other name."""
    m = _FAMILIES[PASS_AT_K][0].fullmatch(name) if isinstance(name, str) else None
    return int(m.group("k")) if m else None
