"""Steps stored packed: numbers as little-endian arrays, the names around them stored once.

A step's scalars are stored as an array of values in the order of a *layout*, the list of
its keys, which a run stores once (table `layouts`) and its steps name by id; a histogram
keeps its edges, labels and quantile keys in a layout the same way, and only its numbers
with each step. Every array takes the narrowest type that holds each of its values exactly
(uint8/16/32 for whole non-negative numbers, then float32, then float64), so a value reads
back bit for bit as it was stored. A missing value (null) is NaN: stored values are finite.

Pure functions over bytes and plain Python values; the SQL is in store/.
"""

from __future__ import annotations

import hashlib

import numpy as np
import orjson

__all__ = [
    "layout_digest",
    "pack_floats",
    "unpack_floats",
    "pack_scalars",
    "unpack_scalars",
    "histogram_layout",
    "pack_histogram",
    "unpack_histogram",
    "HISTOGRAM_STATS",
]

# Codes of the array types, narrowest first; the code leads the array's bytes.
_TYPES = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<f4"), np.dtype("<f8"))
_INT_LIMITS = (0xFF, 0xFFFF, 0xFFFFFFFF)
# The numbers of a histogram beside its counts, in this order; NaN where the record had none.
HISTOGRAM_STATS = ("underflow", "overflow", "count", "sum", "sum_sq", "min", "max")


def layout_digest(doc) -> str:
    """A layout's identity within its run: the hash of its JSON text."""
    return hashlib.sha1(orjson.dumps(doc)).hexdigest()


def pack_floats(values: np.ndarray) -> bytes:
    """A float64 array as its narrowest exact type: a code byte, then the values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return bytes((4,))
    finite = np.isfinite(values)
    # Whole, non-negative and not -0.0: an unsigned integer type holds it exactly.
    if finite.all() and not np.signbit(values).any() and (values == np.floor(values)).all():
        top = values.max()
        for code, limit in enumerate(_INT_LIMITS):
            if top <= limit:
                return bytes((code,)) + values.astype(_TYPES[code]).tobytes()
    narrow = values.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        same = np.array_equal(narrow.astype(np.float64), values, equal_nan=True)
    if same:
        return bytes((3,)) + narrow.tobytes()
    return bytes((4,)) + values.astype("<f8").tobytes()


def unpack_floats(packed: bytes, count: int, offset: int = 0) -> tuple[np.ndarray, int]:
    """(float64 array of `count` values, offset past them) read at `offset`."""
    dtype = _TYPES[packed[offset]]
    if count == 0:
        return np.zeros(0, dtype=np.float64), offset + 1
    values = np.frombuffer(packed, dtype=dtype, count=count, offset=offset + 1).astype(np.float64)
    return values, offset + 1 + count * dtype.itemsize


def pack_scalars(values) -> bytes:
    """A step's scalar values in its layout's order (None for null)."""
    return pack_floats(np.array(values, dtype=np.float64))


def unpack_scalars(packed: bytes, keys: list[str]) -> dict[str, float | None]:
    values, _ = unpack_floats(packed, len(keys))
    return {k: (None if v != v else v) for k, v in zip(keys, values.tolist())}


def histogram_layout(data: dict) -> dict:
    """What a histogram record shares with its neighbours: bins, labels, quantile keys."""
    if data.get("edges") is not None:
        doc = {"edges": data["edges"]}
    else:
        doc = {"lo": data["lo"], "hi": data["hi"], "bins": data.get("bins", len(data["counts"]))}
    doc["n"] = len(data["counts"])
    if data.get("labels") is not None:
        doc["labels"] = data["labels"]
    if data.get("quantiles") is not None:
        doc["quantiles"] = list(data["quantiles"])
    return doc


def pack_histogram(data: dict, layout: dict) -> bytes:
    """A histogram record's numbers, without what its layout holds."""
    quantiles = data.get("quantiles") or {}
    stats = [data.get(k) for k in HISTOGRAM_STATS] + [quantiles.get(k) for k in layout.get("quantiles", ())]
    return pack_floats(np.array(stats, dtype=np.float64)) + pack_floats(np.asarray(data["counts"], dtype=np.float64))


def unpack_histogram(packed: bytes, layout: dict) -> dict:
    """The histogram record as it was stored (fields that were null are left out)."""
    qkeys = layout.get("quantiles")
    stats, offset = unpack_floats(packed, len(HISTOGRAM_STATS) + len(qkeys or ()))
    counts, _ = unpack_floats(packed, layout["n"], offset)
    values = stats.tolist()
    data: dict = {"counts": counts.tolist()}
    if "edges" in layout:
        data["edges"] = layout["edges"]
    else:
        data.update(lo=layout["lo"], hi=layout["hi"], bins=layout["bins"])
    for key, value in zip(HISTOGRAM_STATS, values):
        if value == value:
            data[key] = value
    if "labels" in layout:
        data["labels"] = layout["labels"]
    if qkeys is not None:
        # A quantile the record sent as null stays null (absent ones are not in the layout).
        data["quantiles"] = {k: (v if v == v else None) for k, v in zip(qkeys, values[len(HISTOGRAM_STATS):])}
    return data

