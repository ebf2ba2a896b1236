"""Pure numpy reductions for reads: scalar series buckets and histogram matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SeriesBuckets",
    "downsample_series",
    "downsample_units",
    "bucket_bounds",
    "rebin_counts",
]


@dataclass
class SeriesBuckets:
    steps: np.ndarray  # last step with data in each bucket
    values: np.ndarray  # last value in each bucket (NaN where missing)
    min: np.ndarray
    max: np.ndarray


def bucket_bounds(steps: np.ndarray, max_points: int) -> np.ndarray:
    """Start indices of at most max_points buckets of equal step width over sorted steps."""
    if len(steps) <= max_points:
        return np.arange(len(steps))
    lo, hi = int(steps[0]), int(steps[-1])
    edges = np.linspace(lo, hi + 1, max_points + 1)
    bucket = np.minimum(np.searchsorted(edges, steps, side="right") - 1, max_points - 1)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    return starts


def downsample_series(steps: np.ndarray, values: np.ndarray, max_points: int) -> SeriesBuckets:
    """Bucket a series by step so that spikes survive: last value, min and max per bucket.

    `values` holds NaN where a step has no value; rows with no value are dropped first.
    """
    keep = ~np.isnan(values)
    steps, values = steps[keep], values[keep]
    if len(steps) <= max_points:
        return SeriesBuckets(steps, values, values, values)
    starts = bucket_bounds(steps, max_points)
    ends = np.r_[starts[1:], len(steps)] - 1
    return SeriesBuckets(
        steps=steps[ends],
        values=values[ends],
        min=np.minimum.reduceat(values, starts),
        max=np.maximum.reduceat(values, starts),
    )


def downsample_units(steps: np.ndarray, last: np.ndarray, mins: np.ndarray, maxs: np.ndarray,
                     max_points: int) -> SeriesBuckets:
    """Like downsample_series, over units that each summarise a run of steps.

    A unit (a single step or a block of steps) gives its last step, last value, minimum
    and maximum; buckets take the last unit's step and value and the extremes of all.
    """
    keep = ~np.isnan(last)
    steps, last, mins, maxs = steps[keep], last[keep], mins[keep], maxs[keep]
    if len(steps) <= max_points:
        return SeriesBuckets(steps, last, mins, maxs)
    starts = bucket_bounds(steps, max_points)
    ends = np.r_[starts[1:], len(steps)] - 1
    return SeriesBuckets(
        steps=steps[ends],
        values=last[ends],
        min=np.minimum.reduceat(mins, starts),
        max=np.maximum.reduceat(maxs, starts),
    )


def rebin_counts(counts: np.ndarray, src_edges: np.ndarray, dst_edges: np.ndarray) -> np.ndarray:
    """Move counts onto other edges, assuming mass is uniform within each source bin."""
    cdf = np.r_[0.0, np.cumsum(counts, dtype=float)]
    at_dst = np.interp(dst_edges, src_edges, cdf, left=0.0, right=cdf[-1])
    return np.diff(at_dst)
