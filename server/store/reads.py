"""Reads for charts: downsampled scalar series (store/read_plan.py says how a range is covered)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from fadewatch.server import blocks
from fadewatch.server.auth import Principal
from fadewatch.server.downsample import downsample_units
from fadewatch.server.models import Step
from fadewatch.server.read_schemas import SeriesOut, SeriesPoints
from fadewatch.server.store import blocks as block_store
from fadewatch.server.store import step_rows
from fadewatch.server.store.layouts import Layouts
from fadewatch.server.store.read_plan import block_plan, nullable, span, step_range
from fadewatch.server.store.runs import load_run

__all__ = ["series", "scalar_keys"]


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
    where = [Step.run_id == run_id, *step_range(Step.step, min_step, max_step)]
    n, lo, hi = span(session, Step.step, where, max_points)
    plan = None if n == 0 else block_plan(n, lo, hi, max_points)
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
        out[key] = SeriesPoints(steps=b.steps.tolist(), values=nullable(b.values),
                                min=nullable(b.min), max=nullable(b.max))
    return SeriesOut(run_id=run_id, downsampled=n > max_points, last_step=run.last_step, series=out)


def scalar_keys(session: Session, run_id: int, who: Principal) -> list[str]:
    """Names of the scalars in the run's newest step."""
    run = load_run(session, run_id, who)
    return sorted((run.summary or {}).keys())
