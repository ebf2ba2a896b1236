"""Stored steps and histograms read back from their packed rows (server/packed.py)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from fadewatch.server import packed
from fadewatch.server.models import HistogramRow, Step
from fadewatch.server.store.layouts import Layouts

__all__ = ["scalar_arrays", "histogram_rows"]


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


def histogram_rows(session: Session, layouts: Layouts, run_id: int, name: str | None, lo: int | None,
                   hi: int | None) -> list[tuple[int, str, dict]]:
    """(step, name, record) of the histograms in [lo, hi] (of one name, or all), in step order."""
    where = [HistogramRow.run_id == run_id, *_range(HistogramRow.step, lo, hi)]
    if name is not None:
        where.append(HistogramRow.name == name)
    rows = session.execute(select(HistogramRow.step, HistogramRow.name, HistogramRow.layout, HistogramRow.packed)
                           .where(*where).order_by(HistogramRow.step, HistogramRow.name)).all()
    layouts.load_ids(r[2] for r in rows)
    return [(step, n, packed.unpack_histogram(raw, layouts.doc(layout_id))) for step, n, layout_id, raw in rows]
