"""Reads for charts: downsampled scalar series and histogram matrices."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.downsample import (
    bucket_bounds,
    downsample_series,
    quantiles_from_counts,
    rebin_counts,
)
from fadewatch.server.models import HistogramRow, Step
from fadewatch.server.schemas import HistogramMatrix, SeriesOut, SeriesPoints
from fadewatch.server.store.runs import load_run

__all__ = ["series", "histogram_matrix", "scalar_keys", "QUANTILE_KEYS"]

QUANTILE_KEYS = ("0.05", "0.25", "0.5", "0.75", "0.95")


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def series(
    session: Session,
    run_id: int,
    keys: list[str],
    who: Principal,
    max_points: int,
    min_step: int | None = None,
    max_step: int | None = None,
) -> SeriesOut:
    run = load_run(session, run_id, who)
    query = select(Step.step, *[Step.scalars[k].as_float() for k in keys]).where(
        Step.run_id == run_id
    )
    if min_step is not None:
        query = query.where(Step.step >= min_step)
    if max_step is not None:
        query = query.where(Step.step <= max_step)
    rows = session.execute(query.order_by(Step.step)).all()
    steps = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    out: dict[str, SeriesPoints] = {}
    for i, key in enumerate(keys, start=1):
        values = np.array([np.nan if r[i] is None else r[i] for r in rows], dtype=float)
        b = downsample_series(steps, values, max_points)
        out[key] = SeriesPoints(
            steps=b.steps.tolist(),
            values=_nullable(b.values),
            min=_nullable(b.min),
            max=_nullable(b.max),
        )
    return SeriesOut(
        run_id=run_id,
        downsampled=len(rows) > max_points,
        last_step=run.last_step,
        series=out,
    )


def scalar_keys(session: Session, run_id: int, who: Principal) -> list[str]:
    """Names of the scalars in the run's newest step."""
    run = load_run(session, run_id, who)
    return sorted((run.summary or {}).keys())


def _edges_of(data: dict) -> np.ndarray:
    if data.get("edges") is not None:
        return np.asarray(data["edges"], dtype=float)
    return np.linspace(data["lo"], data["hi"], len(data["counts"]) + 1)


def histogram_matrix(
    session: Session,
    run_id: int,
    name: str,
    who: Principal,
    max_steps: int,
    min_step: int | None = None,
    max_step: int | None = None,
) -> HistogramMatrix:
    """Columns of merged neighbouring steps: counts add, min/max combine, mean is weighted."""
    load_run(session, run_id, who)
    query = select(HistogramRow.step, HistogramRow.data).where(
        HistogramRow.run_id == run_id, HistogramRow.name == name
    )
    if min_step is not None:
        query = query.where(HistogramRow.step >= min_step)
    if max_step is not None:
        query = query.where(HistogramRow.step <= max_step)
    rows = session.execute(query.order_by(HistogramRow.step)).all()
    if not rows:
        return HistogramMatrix(
            run_id=run_id, name=name, steps=[], first_steps=[], edges=[], labels=None,
            counts=[], underflow=[], overflow=[], count=[], mean=[], min=[], max=[],
            quantiles={q: [] for q in QUANTILE_KEYS},
        )
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    latest = rows[-1][1]
    edges = _edges_of(latest)
    counts = np.vstack([_counts_on(data, edges) for _, data in rows])
    under = np.array([d.get("underflow", 0.0) for _, d in rows], dtype=float)
    over = np.array([d.get("overflow", 0.0) for _, d in rows], dtype=float)
    total = np.array([d.get("count", 0.0) for _, d in rows], dtype=float)
    sums = np.array([_num(d.get("sum")) for _, d in rows], dtype=float)
    mins = np.array([_num(d.get("min")) for _, d in rows], dtype=float)
    maxs = np.array([_num(d.get("max")) for _, d in rows], dtype=float)

    starts = bucket_bounds(steps, max_steps)
    ends = np.r_[starts[1:], len(steps)] - 1
    merged = np.add.reduceat(counts, starts, axis=0)
    m_total = np.add.reduceat(total, starts)
    m_sum = np.add.reduceat(np.nan_to_num(sums), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m_total > 0, m_sum / m_total, np.nan)
    mean[np.add.reduceat(np.isnan(sums).astype(int), starts) > 0] = np.nan

    single = starts == ends
    qs = np.array([float(q) for q in QUANTILE_KEYS])
    quantiles = {q: [] for q in QUANTILE_KEYS}
    for col, (s, e) in enumerate(zip(starts, ends)):
        exact = rows[s][1].get("quantiles") or {} if single[col] else {}
        estimated = quantiles_from_counts(merged[col], edges, qs)
        for key, est in zip(QUANTILE_KEYS, estimated):
            value = exact.get(key, est)
            quantiles[key].append(None if value is None or np.isnan(value) else float(value))

    return HistogramMatrix(
        run_id=run_id,
        name=name,
        steps=steps[ends].tolist(),
        first_steps=steps[starts].tolist(),
        edges=edges.tolist(),
        labels=latest.get("labels"),
        counts=merged.tolist(),
        underflow=np.add.reduceat(under, starts).tolist(),
        overflow=np.add.reduceat(over, starts).tolist(),
        count=m_total.tolist(),
        mean=_nullable(mean),
        min=_nullable(np.fmin.reduceat(mins, starts)),
        max=_nullable(np.fmax.reduceat(maxs, starts)),
        quantiles=quantiles,
    )


def _num(value) -> float:
    return np.nan if value is None else float(value)


def _counts_on(data: dict, edges: np.ndarray) -> np.ndarray:
    counts = np.asarray(data["counts"], dtype=float)
    own = _edges_of(data)
    if len(own) == len(edges) and np.array_equal(own, edges):
        return counts
    # Edges changed during the run (user reconfigured): move the mass onto the newest edges.
    return rebin_counts(counts, own, edges)
