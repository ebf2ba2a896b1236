"""Settings of the per-step statistics: every constant of the definitions is a field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fadewatch.errors import UsageError

__all__ = ["HistogramSpec", "StatsConfig", "DEFAULT_HISTOGRAMS", "DEFAULT_QUANTILES"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class HistogramSpec:
    """Fixed uniform bins [lo, hi) split into `bins`, so steps line up as a heatmap."""

    lo: float
    hi: float
    bins: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise UsageError(f"HistogramSpec needs finite lo < hi, got lo={self.lo}, hi={self.hi}")
        if int(self.bins) != self.bins or self.bins < 1:
            raise UsageError(f"HistogramSpec.bins must be a positive integer, got {self.bins!r}")


DEFAULT_HISTOGRAMS: dict[str, HistogramSpec] = {
    "advantages": HistogramSpec(-4.0, 4.0, 80),
    "advantages/token": HistogramSpec(-4.0, 4.0, 80),
    "entropy": HistogramSpec(0.0, 8.0, 64),
}


def _default_edges() -> tuple[float, ...]:
    # i / 10 (not linspace) so that a group solve rate like 3/10 lands exactly on an edge.
    return tuple(i / 10 for i in range(11))


@dataclass
class StatsConfig:
    """Defaults of METRICS.md; override any field, e.g. ``StatsConfig(success_threshold=1.0)``."""

    success_threshold: float = 0.5
    # Interior edges of the difficulty axis, from 0 to 1; an exact-0 and an exact-1 bin are
    # always added, so the default gives 0, (0,0.1], ..., (0.8,0.9], (0.9,1), 1.
    difficulty_edges: tuple[float, ...] = field(default_factory=_default_edges)
    # Per-metric uniform bins; names given here replace the defaults of the same name.
    histograms: dict[str, HistogramSpec] = field(default_factory=dict)
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    # |A| <= zero_tol counts as a zero advantage (sign counts, masses, frac_zero).
    zero_tol: float = 1e-6
    # Token histograms keep this many of their smallest and largest values exact, so their
    # quantiles are exact in the tails (outside [lo, hi)) and when there are this few values.
    tail_values: int = 4096
    # Diversity is computed on at most this many groups (spread evenly over the batch).
    diversity_max_groups: int = 64
    # n of the n-grams behind the mean pairwise Jaccard overlap.
    jaccard_n: int = 2
    # None: 1, 2, 4, ... up to the largest group size G, and G itself.
    pass_at_k: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.difficulty_edges)
        if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 1.0:
            raise UsageError(f"difficulty_edges must run from 0.0 to 1.0, got {edges}")
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise UsageError(f"difficulty_edges must be strictly increasing, got {edges}")
        self.difficulty_edges = edges
        for name, spec in self.histograms.items():
            if not isinstance(spec, HistogramSpec):
                raise UsageError(f"histograms[{name!r}] must be a HistogramSpec, got {type(spec).__name__}")
        qs = tuple(float(q) for q in self.quantiles)
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise UsageError(f"quantiles must lie in [0, 1], got {qs}")
        self.quantiles = qs
        if self.pass_at_k is not None:
            ks = tuple(int(k) for k in self.pass_at_k)
            if any(k < 1 for k in ks):
                raise UsageError(f"pass_at_k values must be >= 1, got {ks}")
            self.pass_at_k = ks
        for name in ("diversity_max_groups", "tail_values"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.jaccard_n < 1:
            raise UsageError(f"jaccard_n must be >= 1, got {self.jaccard_n}")
        if not self.zero_tol >= 0:
            raise UsageError(f"zero_tol must be >= 0, got {self.zero_tol}")

    def spec(self, name: str) -> HistogramSpec:
        """The bins of histogram `name`: the user's if given, else the default."""
        return self.histograms.get(name) or DEFAULT_HISTOGRAMS[name]

    def difficulty_bins(self) -> tuple[list[float], list[str]]:
        """Wire-format edges (one more than bins) and labels of the difficulty histograms."""
        e = self.difficulty_edges
        edges = [0.0, *e, 1.0]
        fmt = "{:g}".format
        labels = ["0"] + [f"({fmt(a)},{fmt(b)}]" for a, b in zip(e[:-2], e[1:-1])]
        labels += [f"({fmt(e[-2])},1)", "1"]
        return edges, labels

    def ks(self, max_group: int) -> tuple[int, ...]:
        """The k of pass@k for groups of at most `max_group` rollouts."""
        if self.pass_at_k is not None:
            return tuple(k for k in self.pass_at_k if k <= max_group)
        ks = [1 << i for i in range(max(max_group, 1).bit_length())]
        return tuple(ks if ks[-1] == max_group else ks + [max_group])
