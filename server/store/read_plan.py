"""How a read covers a step range: single steps, or whole blocks past max_points (server/blocks.py).

Short ranges are read step by step. Past max_points steps, a read takes whole blocks of
steps where they fit inside a bucket and single steps only at the range's ragged ends, so
its cost grows with max_points, not with the run's length. Shared by the series and the
histogram reads.
"""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fadewatch.server import blocks

__all__ = ["span", "block_plan", "step_range", "nullable"]


def nullable(values: np.ndarray) -> list[float | None]:
    out = values.tolist()
    if not np.isfinite(values).all():  # a merged sum can pass the largest float
        return [v if math.isfinite(v) else None for v in out]
    return out


def span(session: Session, step_col, where: list, max_points: int) -> tuple[int, int | None, int | None]:
    """(steps in range, but at most max_points + 1: that is all a read needs to know; first; last)."""
    lo, hi = session.execute(select(func.min(step_col), func.max(step_col)).where(*where)).one()
    if lo is None:
        return 0, None, None
    # Counted no further than a read needs: a count of a million steps alone would take longer.
    # In step order, so that PostgreSQL walks the primary key and stops (whatever its statistics).
    first = select(step_col).where(*where).order_by(step_col).limit(max_points + 1)
    n = session.scalar(select(func.count()).select_from(first.subquery()))
    return int(n), lo, hi


def block_plan(n: int, lo: int, hi: int, max_points: int) -> list[tuple] | None:
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


def step_range(col, lo: int | None, hi: int | None) -> list:
    where = []
    if lo is not None:
        where.append(col >= lo)
    if hi is not None:
        where.append(col <= hi)
    return where
