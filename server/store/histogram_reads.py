"""Reads for charts: histogram matrices, columns of merged neighbouring steps or blocks."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from fadewatch.protocol.histograms import bin_quantiles, quantile_method
from fadewatch.server.auth import Principal
from fadewatch.server.downsample import bucket_bounds, rebin_counts
from fadewatch.server.models import HistogramRow
from fadewatch.server.read_schemas import HistogramMatrix
from fadewatch.server.store import blocks as block_store
from fadewatch.server.store import step_rows
from fadewatch.server.store.layouts import Layouts
from fadewatch.server.store.read_plan import block_plan, nullable, span, step_range
from fadewatch.server.store.runs import load_run

__all__ = ["histogram_matrix", "QUANTILE_KEYS"]

QUANTILE_KEYS = ("0.05", "0.25", "0.5", "0.75", "0.95")


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
             *step_range(HistogramRow.step, min_step, max_step)]
    n, lo, hi = span(session, HistogramRow.step, where, max_steps)
    if n == 0:
        return []
    plan = block_plan(n, lo, hi, max_steps)
    if plan is None:
        return step_rows.histogram_units(session, layouts, layouts.run_id, name, lo, hi)
    units = []
    for piece in plan:
        if piece[0] == "steps":
            units += step_rows.histogram_units(session, layouts, layouts.run_id, name, *piece[1:])
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
    counts = np.vstack([_counts_on(u, edges, latest["edges"]) for u in units])
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
        mean=nullable(mean),
        min=nullable(m_min),
        max=nullable(m_max),
        quantiles=quantiles,
    )


def _counts_on(unit: dict, edges: np.ndarray, same: list | None = None) -> np.ndarray:
    """A unit's counts on `edges`; `same`: those edges as a list, which a unit's own edges
    (most often the very same list: units of one layout share it) are compared with first."""
    counts = np.asarray(unit["counts"], dtype=float)
    if same is not None and (unit["edges"] is same or unit["edges"] == same):
        return counts
    own = np.asarray(unit["edges"], dtype=float)
    if len(own) == len(edges) and np.array_equal(own, edges):
        return counts
    # Edges changed during the run (user reconfigured): move the mass onto the newest edges.
    return rebin_counts(counts, own, edges)
