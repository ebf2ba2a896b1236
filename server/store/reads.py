"""Reads for charts: downsampled scalar series and histogram matrices.

Short ranges are read step by step. Past max_points steps, a read takes whole blocks of
steps (server/blocks.py) where they fit inside a bucket and single steps only at the
range's ragged ends, so its cost grows with max_points, not with the run's length.
"""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fadewatch.protocol.histograms import bin_quantiles, quantile_method
from fadewatch.server import blocks
from fadewatch.server.auth import Principal
from fadewatch.server.downsample import bucket_bounds, downsample_units, rebin_counts
from fadewatch.server.models import HistogramRow, Step
from fadewatch.server.schemas import HistogramMatrix, SeriesOut, SeriesPoints
from fadewatch.server.store import blocks as block_store
from fadewatch.server.store import step_rows
from fadewatch.server.store.layouts import Layouts
from fadewatch.server.store.runs import load_run

__all__ = ["series", "histogram_matrix", "scalar_keys", "QUANTILE_KEYS"]

QUANTILE_KEYS = ("0.05", "0.25", "0.5", "0.75", "0.95")


def _nullable(values: np.ndarray) -> list[float | None]:
    out = values.tolist()
    if not np.isfinite(values).all():  # a merged sum can pass the largest float
        return [v if math.isfinite(v) else None for v in out]
    return out


def _block_parts(packed: list[bytes], keys: list[str], layouts: Layouts) -> dict[str, tuple]:
    """{key: (last steps, last values, minima, maxima)} over blocks; NaN where a block lacks the key.

    Blocks of one layout (mostly all of a run's) are decoded together, as one array.
    """
    n = len(packed)
    steps = {k: np.zeros(n, dtype=np.int64) for k in keys}
    values = {k: np.full((n, 3), np.nan) for k in keys}
    groups: dict[int, list[int]] = {}
    for i, raw in enumerate(packed):
        groups.setdefault(blocks.scalar_block_layout(raw), []).append(i)
    layouts.load_ids(groups)
    for layout_id, members in groups.items():
        where = {k: j for j, k in enumerate(layouts.doc(layout_id))}
        wanted = [(k, where[k]) for k in keys if k in where]
        if not wanted:
            continue
        width = len(where)
        body = np.frombuffer(b"".join(packed[i][4:] for i in members), dtype=np.uint8).reshape(len(members), -1)
        block_steps = body[:, :8 * width].copy().view("<i8")
        block_values = body[:, 8 * width:].copy().view("<f8").reshape(len(members), width, 3)
        index = np.asarray(members)
        for k, j in wanted:
            steps[k][index] = block_steps[:, j]
            values[k][index] = block_values[:, j]
    return {k: (steps[k], values[k][:, 0], values[k][:, 1], values[k][:, 2]) for k in keys}


def _span(session: Session, step_col, where: list, max_points: int) -> tuple[int, int | None, int | None]:
    """(steps in range, but at most max_points + 1: that is all a read needs to know; first; last)."""
    lo, hi = session.execute(select(func.min(step_col), func.max(step_col)).where(*where)).one()
    if lo is None:
        return 0, None, None
    # Counted no further than a read needs: a count of a million steps alone would take longer.
    # In step order, so that PostgreSQL walks the primary key and stops (whatever its statistics).
    first = select(step_col).where(*where).order_by(step_col).limit(max_points + 1)
    n = session.scalar(select(func.count()).select_from(first.subquery()))
    return int(n), lo, hi


def _block_plan(n: int, lo: int, hi: int, max_points: int) -> list[tuple] | None:
    """Pieces that cover [lo, hi] in step order, or None: read every step.

    A piece is ("blocks", level, first, last), whole blocks of one level, or ("steps", a, b).
    The middle takes the coarsest level that fits a bucket, and each end the next finer
    levels that fit there, so a read touches at most 15 single steps at either end.
    """
    if n <= max_points:
        return None
    level = blocks.level_for((hi - lo + 1) / max_points)
    if level is None:
        return None
    levels = [lv for lv in blocks.LEVELS if lv <= level]

    def cover(a: int, b: int, i: int) -> list[tuple]:
        if a > b:
            return []
        if i < 0:
            return [("steps", a, b)]
        size = levels[i]
        first, last = -(-a // size), (b + 1) // size - 1
        if first > last:
            return cover(a, b, i - 1)
        return [*cover(a, first * size - 1, i - 1), ("blocks", size, first, last), *cover((last + 1) * size, b, i - 1)]

    return cover(lo, hi, len(levels) - 1)


def _step_range(col, lo: int | None, hi: int | None) -> list:
    where = []
    if lo is not None:
        where.append(col >= lo)
    if hi is not None:
        where.append(col <= hi)
    return where


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
    layouts = Layouts(session, run_id)
    where = [Step.run_id == run_id, *_step_range(Step.step, min_step, max_step)]
    n, lo, hi = _span(session, Step.step, where, max_points)
    plan = None if n == 0 else _block_plan(n, lo, hi, max_points)
    # Parts in step order, each {key: (steps, last, min, max)}: of single steps or of blocks.
    parts: list[dict[str, tuple]] = []

    def raw(a: int, b: int) -> None:
        steps, values = step_rows.scalar_arrays(session, layouts, run_id, keys, a, b)
        parts.append({k: (steps, v, v, v) for k, v in values.items()})

    if n and plan is None:
        raw(lo, hi)
    for piece in plan or ():
        if piece[0] == "steps":
            raw(*piece[1:])
        else:
            parts.append(_block_parts(block_store.scalar_blocks_in(session, run_id, *piece[1:]), keys, layouts))
    out: dict[str, SeriesPoints] = {}
    for key in keys:
        if parts:
            steps, last_v, mins, maxs = (np.concatenate([p[key][i] for p in parts]) for i in range(4))
        else:
            steps, last_v = np.array([], dtype=np.int64), np.array([], dtype=float)
            mins = maxs = last_v
        b = downsample_units(steps, last_v, mins, maxs, max_points)
        out[key] = SeriesPoints(steps=b.steps.tolist(), values=_nullable(b.values),
                                min=_nullable(b.min), max=_nullable(b.max))
    return SeriesOut(run_id=run_id, downsampled=n > max_points, last_step=run.last_step, series=out)


def scalar_keys(session: Session, run_id: int, who: Principal) -> list[str]:
    """Names of the scalars in the run's newest step."""
    run = load_run(session, run_id, who)
    return sorted((run.summary or {}).keys())


def _raw_histograms(session: Session, layouts: Layouts, name: str, lo: int, hi: int) -> list[dict]:
    units = []
    for step, _, data in step_rows.histogram_rows(session, layouts, layouts.run_id, name, lo, hi):
        unit = blocks.histogram_block(step, data)
        unit["quantiles"] = data.get("quantiles") or {}
        units.append(unit)
    return units


def _empty_matrix(run_id: int, name: str) -> HistogramMatrix:
    return HistogramMatrix(
        run_id=run_id, name=name, steps=[], first_steps=[], edges=[], labels=None,
        counts=[], underflow=[], overflow=[], count=[], mean=[], min=[], max=[],
        quantiles={q: [] for q in QUANTILE_KEYS},
    )


def _num(value) -> float:
    return np.nan if value is None else float(value)


def histogram_matrix(
    session: Session,
    run_id: int,
    names: list[str],
    who: Principal,
    max_steps: int,
    min_step: int | None = None,
    max_step: int | None = None,
) -> HistogramMatrix:
    """Columns of merged neighbouring steps: counts add, min/max combine, mean is weighted.

    Several names (histograms logged on the same bins at the same steps, such as the positive
    and negative mass per difficulty bin) are added step by step into one matrix.
    """
    load_run(session, run_id, who)
    layouts = Layouts(session, run_id)
    per_name = [_units(session, layouts, name, max_steps, min_step, max_step) for name in names]
    units = _add_units(per_name) if len(per_name) > 1 else per_name[0]
    label = ",".join(names)
    return _matrix(run_id, label, units, max_steps) if units else _empty_matrix(run_id, label)


def _units(session: Session, layouts: Layouts, name: str, max_steps: int, min_step: int | None,
           max_step: int | None) -> list[dict]:
    """One histogram's steps (and whole blocks, past max_steps) over the range, in step order."""
    where = [HistogramRow.run_id == layouts.run_id, HistogramRow.name == name,
             *_step_range(HistogramRow.step, min_step, max_step)]
    n, lo, hi = _span(session, HistogramRow.step, where, max_steps)
    if n == 0:
        return []
    plan = _block_plan(n, lo, hi, max_steps)
    if plan is None:
        return _raw_histograms(session, layouts, name, lo, hi)
    units = []
    for piece in plan:
        if piece[0] == "steps":
            units += _raw_histograms(session, layouts, name, *piece[1:])
        else:
            units += block_store.histogram_blocks_in(session, layouts, name, *piece[1:])
    return units


def _add_units(per_name: list[list[dict]]) -> list[dict]:
    """Units of several histograms added where they cover the same steps, on the first one's edges.

    A step one of them lacks keeps the others' counts; exact per-step quantiles do not add, so a
    sum keeps none (its quantiles are read from the summed bins).
    """
    out: dict[tuple[int, int], dict] = {}
    for units in per_name:
        for u in units:
            key = (u["first"], u["last"])
            held = out.get(key)
            if held is None:
                out[key] = {**u, "counts": np.asarray(u["counts"], dtype=float), "quantiles": {}}
                continue
            held["counts"] = held["counts"] + _counts_on(u, np.asarray(held["edges"], dtype=float))
            for field in ("underflow", "overflow", "count"):
                held[field] += u[field]
            held["sum"] = None if held["sum"] is None or u["sum"] is None else held["sum"] + u["sum"]
            held["min"] = _fold(min, held["min"], u["min"])
            held["max"] = _fold(max, held["max"], u["max"])
    return [out[k] for k in sorted(out, key=lambda k: (k[1], k[0]))]


def _fold(pick, a, b):
    present = [v for v in (a, b) if v is not None]
    return pick(present) if present else None


def _matrix(run_id: int, name: str, units: list[dict], max_steps: int) -> HistogramMatrix:
    latest = units[-1]
    edges = np.asarray(latest["edges"], dtype=float)
    counts = np.vstack([_counts_on(u, edges) for u in units])
    under = np.array([u["underflow"] for u in units], dtype=float)
    over = np.array([u["overflow"] for u in units], dtype=float)
    total = np.array([u["count"] for u in units], dtype=float)
    sums = np.array([_num(u["sum"]) for u in units], dtype=float)
    mins = np.array([_num(u["min"]) for u in units], dtype=float)
    maxs = np.array([_num(u["max"]) for u in units], dtype=float)
    lasts = np.array([u["last"] for u in units], dtype=np.int64)
    firsts = np.array([u["first"] for u in units], dtype=np.int64)

    starts = bucket_bounds(lasts, max_steps)
    ends = np.r_[starts[1:], len(units)] - 1
    m_total = np.add.reduceat(total, starts)
    m_sum = np.add.reduceat(np.nan_to_num(sums), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m_total > 0, m_sum / m_total, np.nan)
    mean[np.add.reduceat(np.isnan(sums).astype(int), starts) > 0] = np.nan
    merged = np.add.reduceat(counts, starts, axis=0)
    m_under, m_over = np.add.reduceat(under, starts), np.add.reduceat(over, starts)
    m_min, m_max = np.fmin.reduceat(mins, starts), np.fmax.reduceat(maxs, starts)

    qs = np.array([float(q) for q in QUANTILE_KEYS])
    method = quantile_method(latest.get("labels"))
    quantiles: dict[str, list] = {q: [] for q in QUANTILE_KEYS}
    for col, (s, e) in enumerate(zip(starts, ends)):
        # A column of one logged step keeps that step's exact quantiles.
        exact = units[s].get("quantiles") or {} if s == e and units[s]["n"] == 1 else {}
        estimated = bin_quantiles(merged[col], edges, qs, underflow=m_under[col], overflow=m_over[col],
                                  vmin=m_min[col], vmax=m_max[col], method=method)
        for key, est in zip(QUANTILE_KEYS, estimated):
            value = exact.get(key, est)
            quantiles[key].append(None if value is None or np.isnan(value) else float(value))

    return HistogramMatrix(
        run_id=run_id,
        name=name,
        steps=lasts[ends].tolist(),
        first_steps=firsts[starts].tolist(),
        edges=edges.tolist(),
        labels=latest.get("labels"),
        counts=merged.tolist(),
        underflow=m_under.tolist(),
        overflow=m_over.tolist(),
        count=m_total.tolist(),
        mean=_nullable(mean),
        min=_nullable(m_min),
        max=_nullable(m_max),
        quantiles=quantiles,
    )


def _counts_on(unit: dict, edges: np.ndarray) -> np.ndarray:
    counts = np.asarray(unit["counts"], dtype=float)
    own = np.asarray(unit["edges"], dtype=float)
    if len(own) == len(edges) and np.array_equal(own, edges):
        return counts
    # Edges changed during the run (user reconfigured): move the mass onto the newest edges.
    return rebin_counts(counts, own, edges)
