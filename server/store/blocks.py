"""Step blocks (server/blocks.py) in the database: kept at ingest, read for long ranges."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import Session

from fadewatch.server import blocks
from fadewatch.server.models import HistogramBlock, ScalarBlock
from fadewatch.server.store.layouts import Layouts, array_literal, blob_params

__all__ = ["add_steps", "scalar_blocks_in", "histogram_blocks_in"]

BASE = blocks.LEVELS[0]


class _Codec:
    """Blocks of one table to and from their packed rows, against the run's layouts."""

    def __init__(self, layouts: Layouts, histograms: bool) -> None:
        self.layouts = layouts
        self.histograms = histograms

    def decode_all(self, raws: list[bytes]) -> list[dict]:
        layout_of = blocks.histogram_block_layout_id if self.histograms else blocks.scalar_block_layout
        ids = [layout_of(raw) for raw in raws]
        self.layouts.load_ids(ids)
        if self.histograms:
            return [blocks.unpack_histogram_block(raw, self.layouts.doc(i)) for raw, i in zip(raws, ids)]
        return [blocks.unpack_scalar_block(raw, self.layouts.doc(i)) for raw, i in zip(raws, ids)]

    def encode_all(self, merged: list[dict]) -> list[bytes]:
        if self.histograms:
            ids = self.layouts.ids([blocks.histogram_block_layout(b) for b in merged])
            return blocks.pack_histogram_blocks(merged, ids)
        ids = self.layouts.ids([list(b["k"]) for b in merged])
        return [blocks.pack_scalar_block(b, i) for b, i in zip(merged, ids)]


def _upsert(session: Session, table, run_id: int, fresh: dict[tuple, dict], merge, codec: _Codec) -> None:
    """Merge `fresh` blocks {(name, level, block) or (level, block): data} into the stored ones."""
    if not fresh:
        return
    columns = ("name", "level", "block") if "name" in table.c else ("level", "block")
    if session.get_bind().dialect.name == "postgresql":
        read, write = _PG_SQL[table.name]
        params = {"run_id": run_id, **{c: array_literal(k[i] for k in fresh) for i, c in enumerate(columns)}}
        stored_rows = session.execute(read, params).all()
    else:
        where = []
        by_level: dict[tuple, list[int]] = {}
        for key in fresh:
            by_level.setdefault(key[:-1], []).append(key[-1])
        for head, indices in by_level.items():
            parts = [table.c.level == head[-1], table.c.block.in_(indices)]
            if len(columns) == 3:
                parts.append(table.c.name == head[0])
            where.append(and_(*parts))
        stored_rows = session.execute(select(*(table.c[c] for c in columns), table.c.data).where(
            table.c.run_id == run_id, or_(*where))).all()
    stored = dict(zip((tuple(r[:-1]) for r in stored_rows), codec.decode_all([r[-1] for r in stored_rows])))
    keys = list(fresh)
    packed = codec.encode_all([merge(stored.get(k), fresh[k]) for k in keys])
    if session.get_bind().dialect.name == "postgresql":
        params = {"run_id": run_id, **blob_params(packed),
                  **{c: array_literal(k[i] for k in keys) for i, c in enumerate(columns)}}
        session.execute(write, params)
        return
    rows = [{"run_id": run_id, **dict(zip(columns, k)), "data": data} for k, data in zip(keys, packed)]
    inserts = [r for r, k in zip(rows, keys) if k not in stored]
    updates = [r for r, k in zip(rows, keys) if k in stored]
    if inserts:
        session.execute(insert(table), inserts)
    if updates:
        match = [table.c.run_id == bindparam("b_run"), table.c.level == bindparam("b_level"),
                 table.c.block == bindparam("b_block")]
        if len(columns) == 3:
            match.append(table.c.name == bindparam("b_name"))
        session.execute(update(table).where(*match).values(data=bindparam("data")), [
            {"b_run": r["run_id"], "b_level": r["level"], "b_block": r["block"], "data": r["data"],
             **({"b_name": r["name"]} if len(columns) == 3 else {})}
            for r in updates
        ])


# On PostgreSQL a batch's blocks are one read and one upsert, each a fixed statement over
# array parameters (as the steps themselves are written): no per-batch SQL to compile, no
# round trip per updated block, and packed blocks cross the wire as one binary value.
_PG_SQL = {
    "scalar_blocks": (
        text("""
            SELECT b.level, b.block, b.data FROM scalar_blocks b
            JOIN unnest(CAST(:level AS int[]), CAST(:block AS bigint[])) AS k(level, block)
              ON b.level = k.level AND b.block = k.block
            WHERE b.run_id = :run_id"""),
        text("""
            INSERT INTO scalar_blocks (run_id, level, block, data)
            SELECT :run_id, r.level, r.block, substring(CAST(:blob AS bytea) FROM r.start FOR r.size)
            FROM unnest(CAST(:level AS int[]), CAST(:block AS bigint[]), CAST(:starts AS int[]),
                        CAST(:sizes AS int[])) AS r(level, block, start, size)
            ORDER BY r.level, r.block
            ON CONFLICT (run_id, level, block) DO UPDATE SET data = EXCLUDED.data"""),
    ),
    "histogram_blocks": (
        text("""
            SELECT b.name, b.level, b.block, b.data FROM histogram_blocks b
            JOIN unnest(CAST(:name AS text[]), CAST(:level AS int[]), CAST(:block AS bigint[]))
                 AS k(name, level, block)
              ON b.name = k.name AND b.level = k.level AND b.block = k.block
            WHERE b.run_id = :run_id"""),
        text("""
            INSERT INTO histogram_blocks (run_id, name, level, block, data)
            SELECT :run_id, r.name, r.level, r.block, substring(CAST(:blob AS bytea) FROM r.start FOR r.size)
            FROM unnest(CAST(:name AS text[]), CAST(:level AS int[]), CAST(:block AS bigint[]),
                        CAST(:starts AS int[]), CAST(:sizes AS int[])) AS r(name, level, block, start, size)
            ORDER BY r.name, r.level, r.block
            ON CONFLICT (run_id, name, level, block) DO UPDATE SET data = EXCLUDED.data"""),
    ),
}


def _levels_up(base: dict[int, dict], merge) -> dict[tuple[int, int], dict]:
    """Blocks of every level from the finest level's blocks of the same steps."""
    out = {(BASE, i): b for i, b in base.items()}
    for level in blocks.LEVELS[1:]:
        ratio = level // BASE
        for i, b in base.items():
            key = (level, i // ratio)
            out[key] = merge(out.get(key), b)
    return out


def _scalar_matrix(steps: Sequence[tuple[int, dict, dict]]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(steps, keys, values: a row per step, NaN where a step has no value) of a batch."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, scalars, _) in enumerate(steps):
        groups.setdefault(tuple(scalars), []).append(i)
    column = {k: j for j, k in enumerate(dict.fromkeys(k for keys in groups for k in keys))}
    values = np.full((len(steps), len(column)), np.nan)
    for keys, members in groups.items():
        if keys:
            rows = np.array([list(steps[i][1].values()) for i in members], dtype=np.float64)
            values[np.ix_(members, [column[k] for k in keys])] = rows
    return np.array([s for s, _, _ in steps], dtype=np.int64), list(column), values


def add_steps(session: Session, run_id: int, steps: Sequence[tuple[int, dict, dict]],
              layouts: Layouts | None = None) -> None:
    """Fold newly stored steps, (step, scalars, {histogram name: data}), into the blocks."""
    if not steps:
        return
    layouts = layouts or Layouts(session, run_id)
    fresh = blocks.scalar_level_blocks(*_scalar_matrix(steps))
    _upsert(session, ScalarBlock.__table__, run_id, fresh, blocks.merge_scalar_block, _Codec(layouts, False))
    by_name: dict[str, list[tuple[int, dict]]] = {}
    for step, _, histograms in steps:
        for name, data in histograms.items():
            by_name.setdefault(name, []).append((step, data))
    hist_fresh = {}
    for name, rows in by_name.items():
        for (level, index), data in _levels_up(blocks.histogram_blocks(rows, BASE),
                                               blocks.merge_histogram_block).items():
            hist_fresh[(name, level, index)] = data
    _upsert(session, HistogramBlock.__table__, run_id, hist_fresh, blocks.merge_histogram_block,
            _Codec(layouts, True))


def _raw(session: Session, table, where) -> list:
    return [r[0] for r in session.execute(select(table.c.data).where(*where).order_by(table.c.block))]


def scalar_blocks_in(session: Session, run_id: int, level: int, first: int, last: int) -> list[bytes]:
    """Packed blocks first..last (indices) of one level, in step order (blocks.scalar_block_arrays)."""
    t = ScalarBlock.__table__
    return _raw(session, t, [t.c.run_id == run_id, t.c.level == level, t.c.block.between(first, last)])


def histogram_blocks_in(session: Session, layouts: Layouts, name: str, level: int, first: int,
                        last: int) -> list[dict]:
    t = HistogramBlock.__table__
    where = [t.c.run_id == layouts.run_id, t.c.name == name, t.c.level == level, t.c.block.between(first, last)]
    return _Codec(layouts, True).decode_all(_raw(session, t, where))
