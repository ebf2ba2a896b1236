"""Step blocks: scalars and histograms pre-aggregated over aligned runs of steps.

A block of level L holds steps [b*L, (b+1)*L) of one run. Kept at ingest, blocks let a read
of a long run touch a few thousand rows instead of every step: a downsampled series needs
only each bucket's last value, minimum and maximum, and a histogram column only the sum of
its steps' counts, and both combine exactly from blocks. Levels grow by 4, so a read of
max_points buckets uses at most about 4 x max_points blocks.

Pure functions over plain dicts; the SQL is in store/blocks.py.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

import numpy as np
from fadewatch.protocol.histograms import record_edges
from fadewatch.server.downsample import rebin_counts
from fadewatch.server.packed import pack_floats, pack_rows, unpack_floats

__all__ = [
    "LEVELS",
    "level_for",
    "scalar_blocks",
    "scalar_level_blocks",
    "merge_scalar_block",
    "pack_scalar_block",
    "unpack_scalar_block",
    "scalar_block_layout",
    "scalar_block_arrays",
    "histogram_block_layout",
    "pack_histogram_block",
    "pack_histogram_blocks",
    "unpack_histogram_block",
    "histogram_block_layout_id",
    "histogram_blocks",
    "merge_histogram_block",
    "histogram_block",
]

LEVELS = (16, 64, 256, 1024, 4096, 16384, 65536)


def level_for(width: float) -> int | None:
    """The coarsest level whose blocks fit in a bucket `width` steps wide (None: read steps)."""
    fitting = [level for level in LEVELS if level <= width]
    return fitting[-1] if fitting else None


# Scalars: {"k": {key: [last_step, last_value, min, max]}}; null values are left out.

def _merge_entry(old: list | None, new: list) -> list:
    if old is None:
        return new
    last_step, last = (new[0], new[1]) if new[0] >= old[0] else (old[0], old[1])
    return [last_step, last, min(old[2], new[2]), max(old[3], new[3])]


def scalar_blocks(steps: Iterable[tuple[int, dict]], level: int) -> dict[int, dict]:
    """Blocks of one level from (step, scalars) pairs: {block index: block}."""
    out: dict[int, dict] = {}
    isfinite = math.isfinite
    for step, scalars in steps:
        keys = out.setdefault(step // level, {"k": {}})["k"]
        for key, value in scalars.items():
            if value is None or not isfinite(value):
                continue
            entry = keys.get(key)
            if entry is None:
                keys[key] = [step, value, value, value]
                continue
            # In place: this runs for every scalar of every step stored.
            if step >= entry[0]:
                entry[0], entry[1] = step, value
            if value < entry[2]:
                entry[2] = value
            if value > entry[3]:
                entry[3] = value
    return out


def scalar_level_blocks(steps: np.ndarray, keys: list[str], values: np.ndarray,
                        levels=LEVELS) -> dict[tuple[int, int], dict]:
    """Blocks of every level, {(level, index): block}, from steps and their values (rows; NaN: none).

    The same blocks as scalar_blocks level by level, reduced with numpy: this runs for every
    batch stored, over every scalar of every step.
    """
    order = np.argsort(steps, kind="stable")
    steps, values = np.asarray(steps, dtype=np.int64)[order], np.asarray(values, dtype=np.float64)[order]
    finite = np.isfinite(values)
    rows = np.where(finite, np.arange(len(steps))[:, None], -1)
    lows, highs = np.where(finite, values, np.inf), np.where(finite, values, -np.inf)
    out: dict[tuple[int, int], dict] = {}
    for level in levels:
        index = steps // level
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        last = np.maximum.reduceat(rows, starts, axis=0)
        mins = np.minimum.reduceat(lows, starts, axis=0).tolist()
        maxs = np.maximum.reduceat(highs, starts, axis=0).tolist()
        step_list, value_list = steps.tolist(), values.tolist()
        for b, (block, last_rows) in enumerate(zip(index[starts].tolist(), last.tolist())):
            out[(level, block)] = {"k": {
                keys[j]: [step_list[r], value_list[r][j], mins[b][j], maxs[b][j]]
                for j, r in enumerate(last_rows) if r >= 0}}
    return out


def merge_scalar_block(old: dict | None, new: dict) -> dict:
    if old is None:
        return new
    keys = dict(old["k"])
    for key, entry in new["k"].items():
        keys[key] = _merge_entry(keys.get(key), entry)
    return {"k": keys}


# Stored packed (server/packed.py): a scalar block is read for every bucket of every long
# chart, and decoding thousands of JSON documents full of floats costs more than the rest of
# the read. Layout: u32 id of the run's layout of its keys, int64 last steps, float64
# (last, min, max) rows in the layout's order.
_SCALAR_HEAD = struct.Struct("<I")


def pack_scalar_block(block: dict, layout_id: int) -> bytes:
    """A block packed against the layout of its keys (list(block["k"]), in that order)."""
    entries = list(block["k"].values())
    steps = np.array([e[0] for e in entries], dtype="<i8")
    values = np.array([e[1:] for e in entries], dtype="<f8").reshape(-1, 3)
    return _SCALAR_HEAD.pack(layout_id) + steps.tobytes() + values.tobytes()


def scalar_block_layout(packed: bytes) -> int:
    return _SCALAR_HEAD.unpack_from(packed)[0]


def scalar_block_arrays(packed: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(last steps, rows of last/min/max) of a packed block of `n` keys, without building dicts."""
    steps = np.frombuffer(packed, dtype="<i8", count=n, offset=4)
    values = np.frombuffer(packed, dtype="<f8", count=3 * n, offset=4 + 8 * n).reshape(n, 3)
    return steps, values


def unpack_scalar_block(packed: bytes, keys: list[str]) -> dict:
    steps, values = scalar_block_arrays(packed, len(keys))
    return {"k": {k: [int(s), *v] for k, s, v in zip(keys, steps.tolist(), values.tolist())}}


# Histograms: one block per (name, level, index) with explicit edges and summed counts.

def _num(value) -> float:
    return math.nan if value is None else float(value)


def histogram_block(step: int, data: dict) -> dict:
    """The block of a single step."""
    return {
        "first": step, "last": step, "n": 1, "edges": record_edges(data), "labels": data.get("labels"),
        "counts": [float(c) for c in data["counts"]], "underflow": float(data.get("underflow", 0.0)),
        "overflow": float(data.get("overflow", 0.0)), "count": float(data.get("count") or 0.0),
        "sum": data.get("sum"), "min": data.get("min"), "max": data.get("max"),
    }


def _fmin(a, b):
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


def _fmax(a, b):
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


def merge_histogram_block(old: dict | None, new: dict) -> dict:
    """Add two blocks; on different edges the older one's mass moves onto the newer edges."""
    if old is None:
        return new
    newer, older = (new, old) if new["last"] >= old["last"] else (old, new)
    counts = np.asarray(older["counts"], dtype=float)
    if older["edges"] != newer["edges"]:
        counts = rebin_counts(counts, np.asarray(older["edges"]), np.asarray(newer["edges"]))
    # A block's sum is unknown (null) as soon as one of its steps had no sum.
    total_sum = None if old["sum"] is None or new["sum"] is None else old["sum"] + new["sum"]
    return {
        "first": min(old["first"], new["first"]), "last": newer["last"], "n": old["n"] + new["n"],
        "edges": newer["edges"], "labels": newer["labels"],
        "counts": (counts + np.asarray(newer["counts"], dtype=float)).tolist(),
        "underflow": old["underflow"] + new["underflow"], "overflow": old["overflow"] + new["overflow"],
        "count": old["count"] + new["count"], "sum": total_sum,
        "min": _fmin(old["min"], new["min"]), "max": _fmax(old["max"], new["max"]),
    }


def _edges_key(data: dict) -> tuple:
    if data.get("edges") is not None:
        return ("edges", *data["edges"])
    return ("uniform", data["lo"], data["hi"], len(data["counts"]))


def histogram_blocks(rows: Iterable[tuple[int, dict]], level: int) -> dict[int, dict]:
    """Blocks of one level from (step, histogram data) pairs of one histogram name."""
    groups: dict[int, list[tuple[int, dict]]] = {}
    for step, data in rows:
        groups.setdefault(step // level, []).append((step, data))
    out: dict[int, dict] = {}
    for index, members in groups.items():
        members.sort(key=lambda m: m[0])
        last_step, latest = members[-1]
        key = _edges_key(latest)
        same = [d for _, d in members if _edges_key(d) == key]
        if len(same) < len(members):  # edges changed inside the block: merge one step at a time
            block = None
            for step, data in members:
                block = merge_histogram_block(block, histogram_block(step, data))
            out[index] = block
            continue
        sums = [d.get("sum") for d in same]
        mins = [d["min"] for d in same if d.get("min") is not None]
        maxs = [d["max"] for d in same if d.get("max") is not None]
        out[index] = {
            "first": members[0][0], "last": last_step, "n": len(members), "edges": record_edges(latest),
            "labels": latest.get("labels"),
            "counts": np.asarray([d["counts"] for d in same], dtype=float).sum(axis=0).tolist(),
            "underflow": float(sum(d.get("underflow", 0.0) for d in same)),
            "overflow": float(sum(d.get("overflow", 0.0) for d in same)),
            "count": float(sum(d.get("count") or 0.0 for d in same)),
            "sum": None if any(v is None for v in sums) else float(sum(sums)),
            "min": min(mins) if mins else None, "max": max(maxs) if maxs else None,
        }
    return out


# Packed histogram blocks: first, last and n (int64), the id of the run's layout of their
# edges and labels (u32), then the block's numbers and counts as packed.pack_floats arrays.
_HIST_HEAD = struct.Struct("<qqqI")
_HIST_STATS = ("underflow", "overflow", "count", "sum", "min", "max")


def histogram_block_layout(block: dict) -> dict:
    doc = {"edges": block["edges"]}
    if block.get("labels") is not None:
        doc["labels"] = block["labels"]
    return doc


def pack_histogram_block(block: dict, layout_id: int) -> bytes:
    stats = np.array([math.nan if block[k] is None else block[k] for k in _HIST_STATS], dtype=np.float64)
    return (_HIST_HEAD.pack(block["first"], block["last"], block["n"], layout_id) + pack_floats(stats)
            + pack_floats(np.asarray(block["counts"], dtype=np.float64)))


def pack_histogram_blocks(blocks: list[dict], layout_ids: list[int]) -> list[bytes]:
    """Blocks packed together (as pack_histogram_block), their arrays typed in one pass."""
    stats = pack_rows(np.array([[math.nan if b[k] is None else b[k] for k in _HIST_STATS] for b in blocks],
                               dtype=np.float64).reshape(len(blocks), len(_HIST_STATS)))
    counts: list[bytes] = [b""] * len(blocks)
    by_width: dict[int, list[int]] = {}
    for i, b in enumerate(blocks):
        by_width.setdefault(len(b["counts"]), []).append(i)
    for members in by_width.values():
        for i, row in zip(members, pack_rows(np.array([blocks[i]["counts"] for i in members], dtype=np.float64))):
            counts[i] = row
    return [_HIST_HEAD.pack(b["first"], b["last"], b["n"], lid) + s + c
            for b, lid, s, c in zip(blocks, layout_ids, stats, counts)]


def histogram_block_layout_id(packed: bytes) -> int:
    return _HIST_HEAD.unpack_from(packed)[3]


def unpack_histogram_block(packed: bytes, layout: dict) -> dict:
    first, last, n, _ = _HIST_HEAD.unpack_from(packed)
    stats, offset = unpack_floats(packed, len(_HIST_STATS), _HIST_HEAD.size)
    counts, _ = unpack_floats(packed, len(layout["edges"]) - 1, offset)
    block = {"first": first, "last": last, "n": n, "edges": layout["edges"], "labels": layout.get("labels"),
             "counts": counts.tolist()}
    for key, value in zip(_HIST_STATS, stats.tolist()):
        block[key] = value if value == value or key not in ("sum", "min", "max") else None
    return block
