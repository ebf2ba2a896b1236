"""Step blocks as revisions 0003 to 0005 stored them, for the migrations that read or write them.

Scalar blocks: u32 length of a JSON list of keys, the list, int64 last steps, float64
(last, min, max) rows. Histogram blocks: the block's dict as JSON text. Kept here, frozen,
so that the migrations keep working as the server's own formats move on.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import sqlalchemy as sa

__all__ = ["pack_scalar_block", "unpack_scalar_block", "pack_histogram_block", "unpack_histogram_block",
           "rebuild_blocks"]


def pack_scalar_block(block: dict) -> bytes:
    keys = list(block["k"])
    header = orjson.dumps(keys)
    entries = [block["k"][k] for k in keys]
    steps = np.array([e[0] for e in entries], dtype="<i8")
    values = np.array([e[1:] for e in entries], dtype="<f8").reshape(-1, 3)
    return struct.pack("<I", len(header)) + header + steps.tobytes() + values.tobytes()


def unpack_scalar_block(packed: bytes) -> dict:
    (size,) = struct.unpack_from("<I", packed)
    keys = orjson.loads(bytes(packed[4:4 + size]))
    n = len(keys)
    steps = np.frombuffer(packed, dtype="<i8", count=n, offset=4 + size)
    values = np.frombuffer(packed, dtype="<f8", count=3 * n, offset=4 + size + 8 * n).reshape(n, 3)
    return {"k": {k: [int(s), *v] for k, s, v in zip(keys, steps.tolist(), values.tolist())}}


def pack_histogram_block(block: dict) -> str:
    return orjson.dumps(block).decode()


def unpack_histogram_block(text: str) -> dict:
    return orjson.loads(text)


def _levels_up(base: dict[int, dict], merge, levels) -> dict[tuple[int, int], dict]:
    out = {(levels[0], i): b for i, b in base.items()}
    for level in levels[1:]:
        ratio = level // levels[0]
        for i, b in base.items():
            key = (level, i // ratio)
            out[key] = merge(out.get(key), b)
    return out


def rebuild_blocks(bind, chunk: int = 2000) -> None:
    """Blocks of every run from its steps (JSON scalars and histograms, as stored up to 0005)."""
    from fadewatch.server import blocks

    levels = blocks.LEVELS
    run_ids = [r[0] for r in bind.execute(sa.text("SELECT id FROM runs ORDER BY id"))]
    steps_t = sa.table("steps", sa.column("run_id"), sa.column("step"), sa.column("scalars", sa.JSON()))
    hist_t = sa.table("histograms", sa.column("run_id"), sa.column("name"), sa.column("step"),
                      sa.column("data", sa.JSON()))
    sb = sa.table("scalar_blocks", *(sa.column(c) for c in ("run_id", "level", "block", "data")))
    hb = sa.table("histogram_blocks", *(sa.column(c) for c in ("run_id", "name", "level", "block", "data")))
    for run_id in run_ids:
        scalar_fresh: dict = {}
        hist_fresh: dict = {}
        last = -1
        while True:
            rows = bind.execute(sa.select(steps_t.c.step, steps_t.c.scalars).where(
                steps_t.c.run_id == run_id, steps_t.c.step > last).order_by(steps_t.c.step).limit(chunk)).all()
            if not rows:
                break
            lo, hi = rows[0][0], rows[-1][0]
            base = blocks.scalar_blocks(((s, v or {}) for s, v in rows), levels[0])
            for key, b in _levels_up(base, blocks.merge_scalar_block, levels).items():
                scalar_fresh[key] = blocks.merge_scalar_block(scalar_fresh.get(key), b)
            by_name: dict[str, list] = {}
            for step, name, data in bind.execute(sa.select(hist_t.c.step, hist_t.c.name, hist_t.c.data).where(
                    hist_t.c.run_id == run_id, hist_t.c.step.between(lo, hi))):
                by_name.setdefault(name, []).append((step, data))
            for name, items in by_name.items():
                base = blocks.histogram_blocks(items, levels[0])
                for (level, index), b in _levels_up(base, blocks.merge_histogram_block, levels).items():
                    key = (name, level, index)
                    hist_fresh[key] = blocks.merge_histogram_block(hist_fresh.get(key), b)
            last = hi
        if scalar_fresh:
            bind.execute(sb.insert(), [{"run_id": run_id, "level": lv, "block": i, "data": pack_scalar_block(b)}
                                       for (lv, i), b in scalar_fresh.items()])
        if hist_fresh:
            bind.execute(hb.insert(), [{"run_id": run_id, "name": n, "level": lv, "block": i,
                                        "data": pack_histogram_block(b)} for (n, lv, i), b in hist_fresh.items()])
