"""Step blocks (server/blocks.py) in the database: kept at ingest, read for long ranges."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

import orjson
from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import Session

from fadewatch.server import blocks
from fadewatch.server.models import HistogramBlock, ScalarBlock

__all__ = ["add_steps", "rebuild", "scalar_blocks_in", "histogram_blocks_in"]

BASE = blocks.LEVELS[0]


def _json_codec():
    return (lambda raw: orjson.loads(raw)), (lambda data: orjson.dumps(data).decode())


def _upsert(session: Session, table, keys: dict, fresh: dict[tuple, dict], merge, codec) -> None:
    """Merge `fresh` blocks {(name, level, block) or (level, block): data} into the stored ones."""
    if not fresh:
        return
    if session.get_bind().dialect.name == "postgresql":
        _upsert_pg(session, table, keys["run_id"], fresh, merge, codec)
        return
    has_name = "name" in table.c
    where = []
    by_level: dict[tuple, list[int]] = {}
    for key in fresh:
        by_level.setdefault(key[:-1], []).append(key[-1])
    for head, indices in by_level.items():
        parts = [table.c.level == head[-1], table.c.block.in_(indices)]
        if has_name:
            parts.append(table.c.name == head[0])
        where.append(and_(*parts))
    cols = [table.c.name] if has_name else []
    stored = {
        (*r[:-1],): r[-1]
        for r in session.execute(
            select(*cols, table.c.level, table.c.block, table.c.data).where(
                table.c.run_id == keys["run_id"], or_(*where)))
    }
    decode, encode = codec
    inserts, updates = [], []
    for key, data in fresh.items():
        row = {**keys, **dict(zip((["name"] if has_name else []) + ["level", "block"], key))}
        old = stored.get(key)
        row["data"] = encode(merge(None if old is None else decode(old), data))
        (inserts if old is None else updates).append(row)
    if inserts:
        session.execute(insert(table), inserts)
    if updates:
        match = [table.c.run_id == bindparam("b_run"), table.c.level == bindparam("b_level"),
                 table.c.block == bindparam("b_block")]
        if has_name:
            match.append(table.c.name == bindparam("b_name"))
        session.execute(update(table).where(*match).values(data=bindparam("data")), [
            {"b_run": r["run_id"], "b_level": r["level"], "b_block": r["block"], "data": r["data"],
             **({"b_name": r["name"]} if has_name else {})}
            for r in updates
        ])


# On PostgreSQL a batch's blocks are one read and one upsert, each a fixed statement over one
# JSON parameter (as the steps themselves are written): no per-batch SQL to compile, and no
# round trip per updated block. Packed scalar blocks travel as base64 inside the JSON.
_PG_SQL = {
    "scalar_blocks": (
        text("""
            SELECT b.level, b.block, b.data FROM scalar_blocks b
            JOIN json_to_recordset(CAST(:keys AS json)) AS k(level int, block bigint)
              ON b.level = k.level AND b.block = k.block
            WHERE b.run_id = :run_id"""),
        text("""
            INSERT INTO scalar_blocks (run_id, level, block, data)
            SELECT :run_id, r.level, r.block, decode(r.data, 'base64')
            FROM json_to_recordset(CAST(:rows AS json)) AS r(level int, block bigint, data text)
            ORDER BY r.level, r.block
            ON CONFLICT (run_id, level, block) DO UPDATE SET data = EXCLUDED.data"""),
    ),
    "histogram_blocks": (
        text("""
            SELECT b.name, b.level, b.block, b.data FROM histogram_blocks b
            JOIN json_to_recordset(CAST(:keys AS json)) AS k(name text, level int, block bigint)
              ON b.name = k.name AND b.level = k.level AND b.block = k.block
            WHERE b.run_id = :run_id"""),
        text("""
            INSERT INTO histogram_blocks (run_id, name, level, block, data)
            SELECT :run_id, r.name, r.level, r.block, r.data
            FROM json_to_recordset(CAST(:rows AS json)) AS r(name text, level int, block bigint, data text)
            ORDER BY r.name, r.level, r.block
            ON CONFLICT (run_id, name, level, block) DO UPDATE SET data = EXCLUDED.data"""),
    ),
}


def _upsert_pg(session: Session, table, run_id: int, fresh: dict[tuple, dict], merge, codec) -> None:
    read, write = _PG_SQL[table.name]
    columns = ("name", "level", "block") if "name" in table.c else ("level", "block")
    keys = orjson.dumps([dict(zip(columns, key)) for key in fresh]).decode()
    stored = {tuple(r[:-1]): r[-1] for r in session.execute(read, {"run_id": run_id, "keys": keys})}
    decode, encode = codec
    binary = table.name == "scalar_blocks"
    rows = []
    for key, data in fresh.items():
        old = stored.get(key)
        merged = encode(merge(None if old is None else decode(old), data))
        rows.append({**dict(zip(columns, key)), "data": base64.b64encode(merged).decode() if binary else merged})
    session.execute(write, {"run_id": run_id, "rows": orjson.dumps(rows).decode()})


def _levels_up(base: dict[int, dict], merge) -> dict[tuple[int, int], dict]:
    """Blocks of every level from the finest level's blocks of the same steps."""
    out = {(BASE, i): b for i, b in base.items()}
    for level in blocks.LEVELS[1:]:
        ratio = level // BASE
        for i, b in base.items():
            key = (level, i // ratio)
            out[key] = merge(out.get(key), b)
    return out


def add_steps(session: Session, run_id: int, steps: Sequence[tuple[int, dict, dict]]) -> None:
    """Fold newly stored steps, (step, scalars, {histogram name: data}), into the blocks."""
    if not steps:
        return
    scalar_base = blocks.scalar_blocks(((s, scalars) for s, scalars, _ in steps), BASE)
    fresh = _levels_up(scalar_base, blocks.merge_scalar_block)
    _upsert(session, ScalarBlock.__table__, {"run_id": run_id}, fresh, blocks.merge_scalar_block,
            (blocks.unpack_scalar_block, blocks.pack_scalar_block))
    by_name: dict[str, list[tuple[int, dict]]] = {}
    for step, _, histograms in steps:
        for name, data in histograms.items():
            by_name.setdefault(name, []).append((step, data))
    hist_fresh = {}
    for name, rows in by_name.items():
        for (level, index), data in _levels_up(blocks.histogram_blocks(rows, BASE),
                                               blocks.merge_histogram_block).items():
            hist_fresh[(name, level, index)] = data
    _upsert(session, HistogramBlock.__table__, {"run_id": run_id}, hist_fresh, blocks.merge_histogram_block,
            _json_codec())


def rebuild(session: Session, run_ids: Iterable[int], chunk: int = 2000) -> None:
    """Blocks of runs stored before blocks existed, from their steps (used by the migration)."""
    from fadewatch.server.models import HistogramRow, Step

    for run_id in run_ids:
        last = -1
        while True:
            rows = session.execute(
                select(Step.step, Step.scalars).where(Step.run_id == run_id, Step.step > last)
                .order_by(Step.step).limit(chunk)).all()
            if not rows:
                break
            lo, hi = rows[0][0], rows[-1][0]
            hists: dict[int, dict] = {}
            for step, name, data in session.execute(
                select(HistogramRow.step, HistogramRow.name, HistogramRow.data).where(
                    HistogramRow.run_id == run_id, HistogramRow.step.between(lo, hi))):
                hists.setdefault(step, {})[name] = data
            add_steps(session, run_id, [(s, scalars or {}, hists.get(s, {})) for s, scalars in rows])
            last = hi


def _raw(session: Session, table, where) -> list:
    return [r[0] for r in session.execute(select(table.c.data).where(*where).order_by(table.c.block))]


def scalar_blocks_in(session: Session, run_id: int, level: int, first: int, last: int) -> list[bytes]:
    """Packed blocks first..last (indices) of one level, in step order (blocks.scalar_block_arrays)."""
    t = ScalarBlock.__table__
    return _raw(session, t, [t.c.run_id == run_id, t.c.level == level, t.c.block.between(first, last)])


def histogram_blocks_in(session: Session, run_id: int, name: str, level: int, first: int, last: int) -> list[dict]:
    t = HistogramBlock.__table__
    where = [t.c.run_id == run_id, t.c.name == name, t.c.level == level, t.c.block.between(first, last)]
    return [orjson.loads(raw) for raw in _raw(session, t, where)]
