"""Stored steps and histograms read back from their packed rows (server/packed.py)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from fadewatch.protocol.histograms import record_edges
from fadewatch.server import packed
from fadewatch.server.models import HistogramRow, Step
from fadewatch.server.store.layouts import Layouts

__all__ = ["scalar_arrays", "histogram_units"]


def _range(col, lo: int | None, hi: int | None) -> list:
    return ([col >= lo] if lo is not None else []) + ([col <= hi] if hi is not None else [])


def _step_rows(session: Session, run_id: int, lo: int | None, hi: int | None):
    return session.execute(select(Step.step, Step.layout, Step.packed)
                           .where(Step.run_id == run_id, *_range(Step.step, lo, hi)).order_by(Step.step)).all()


def scalar_arrays(session: Session, layouts: Layouts, run_id: int, keys: list[str], lo: int | None,
                  hi: int | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps in [lo, hi] and each key's values there (NaN where a step lacks it).

    Rows of one layout and one array type are decoded together, as one array.
    """
    rows = _step_rows(session, run_id, lo, hi)
    steps = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    out = {k: np.full(len(rows), np.nan) for k in keys}
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, layout_id, raw) in enumerate(rows):
        groups.setdefault((layout_id, raw[0]), []).append(i)
    layouts.load_ids(layout_id for layout_id, _ in groups)
    for (layout_id, _), members in groups.items():
        names = layouts.doc(layout_id)
        where = {k: j for j, k in enumerate(names)}
        wanted = [(k, where[k]) for k in keys if k in where]
        if not wanted:
            continue
        body = b"".join(rows[i][2][1:] for i in members)
        values, _ = packed.unpack_floats(bytes((rows[members[0]][2][0],)) + body, len(members) * len(names))
        values = values.reshape(len(members), len(names))
        index = np.asarray(members)
        for key, j in wanted:
            out[key][index] = values[:, j]
    return steps, out


def histogram_units(session: Session, layouts: Layouts, run_id: int, name: str, lo: int | None,
                    hi: int | None) -> list[dict]:
    """One histogram's steps in [lo, hi], in step order, each as a block of one step (server/blocks.py)
    with its exact quantiles; rows of one layout are decoded together, their edges made once."""
    rows = session.execute(select(HistogramRow.step, HistogramRow.layout, HistogramRow.packed)
                           .where(HistogramRow.run_id == run_id, HistogramRow.name == name,
                                  *_range(HistogramRow.step, lo, hi)).order_by(HistogramRow.step)).all()
    by_layout: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_layout.setdefault(row[1], []).append(i)
    layouts.load_ids(by_layout)
    units: list[dict] = [{}] * len(rows)
    for layout_id, members in by_layout.items():
        doc = layouts.doc(layout_id)
        edges = record_edges(doc, doc["n"])
        labels, qkeys = doc.get("labels"), doc.get("quantiles")
        stats, counts = packed.unpack_histogram_rows([rows[i][2] for i in members], doc)
        for i, values, row_counts in zip(members, stats.tolist(), counts):
            under, over, count, total, _sum_sq, low, high = values[:7]
            units[i] = {
                "first": rows[i][0], "last": rows[i][0], "n": 1, "edges": edges, "labels": labels,
                "counts": row_counts, "underflow": _or(under, 0.0), "overflow": _or(over, 0.0),
                "count": _or(count, 0.0), "sum": _or(total, None), "min": _or(low, None), "max": _or(high, None),
                "quantiles": {} if qkeys is None else {k: _or(v, None) for k, v in zip(qkeys, values[7:])},
            }
    return units


def _or(value: float, default):
    """A stored value, or the default where it was null (stored as NaN)."""
    return default if value != value else value
