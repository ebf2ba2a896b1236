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
    "pack_rows",
    "pack_floats",
    "unpack_floats",
    "pack_scalars",
    "pack_scalar_rows",
    "unpack_scalars",
    "histogram_layout",
    "histogram_layout_key",
    "pack_histogram",
    "pack_histograms",
    "unpack_histogram",
    "unpack_histogram_rows",
    "HISTOGRAM_STATS",
]

# Codes of the array types, narrowest first; the code leads the array's bytes.
_TYPES = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<f4"), np.dtype("<f8"))
_INT_LIMITS = (0xFF, 0xFFFF, 0xFFFFFFFF)
_CODE_BYTES = [bytes((code,)) for code in range(len(_TYPES))]
# The numbers of a histogram beside its counts, in this order; NaN where the record had none.
HISTOGRAM_STATS = ("underflow", "overflow", "count", "sum", "sum_sq", "min", "max")


def layout_digest(doc) -> str:
    """A layout's identity within its run: the hash of its JSON text."""
    return hashlib.sha1(orjson.dumps(doc)).hexdigest()


def pack_rows(rows: np.ndarray) -> list[bytes]:
    """Each row of a float64 matrix as its narrowest exact type: a code byte, then the values.

    Decided for all rows at once: this runs for every step and histogram stored.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n, width = rows.shape
    if width == 0:
        return [bytes((4,))] * n
    with np.errstate(all="ignore"):
        # Whole, non-negative and not -0.0: an unsigned integer type holds it exactly.
        whole = (np.isfinite(rows) & ~np.signbit(rows) & (rows == np.floor(rows))).all(axis=1)
        top = np.where(whole[:, None], rows, 0.0).max(axis=1)
        narrow = rows.astype(np.float32)
        exact32 = ((narrow.astype(np.float64) == rows) | np.isnan(rows)).all(axis=1)
        codes = np.where(exact32, 3, 4)
        for code in (2, 1, 0):
            codes[whole & (top <= _INT_LIMITS[code])] = code
        typed = {c: narrow if c == 3 else rows.astype(_TYPES[c]) for c in set(codes.tolist())}
    return [_CODE_BYTES[c] + typed[c][i].tobytes() for i, c in enumerate(codes.tolist())]


def pack_floats(values: np.ndarray) -> bytes:
    """A float64 array as its narrowest exact type (see pack_rows)."""
    return pack_rows(np.asarray(values, dtype=np.float64).reshape(1, -1))[0]


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


def pack_scalar_rows(rows: list[list]) -> list[bytes]:
    """Scalar values of steps that share one layout (None for null)."""
    return pack_rows(np.array(rows, dtype=np.float64).reshape(len(rows), -1))


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


def histogram_layout_key(data: dict) -> tuple:
    """What identifies a histogram record's layout, cheaper to make than the layout itself."""
    labels, quantiles = data.get("labels"), data.get("quantiles")
    shape = ("e", *data["edges"]) if data.get("edges") is not None else ("u", data["lo"], data["hi"], data.get("bins"))
    return (len(data["counts"]), None if labels is None else tuple(labels),
            None if quantiles is None else tuple(quantiles), *shape)


def pack_histogram(data: dict, layout: dict) -> bytes:
    """A histogram record's numbers, without what its layout holds."""
    return pack_histograms([data], layout)[0]


def pack_histograms(records: list[dict], layout: dict) -> list[bytes]:
    """Histogram records of one layout, packed together."""
    qkeys = layout.get("quantiles", ())
    stats = np.array([[d.get(k) for k in HISTOGRAM_STATS] + [(d.get("quantiles") or {}).get(k) for k in qkeys]
                      for d in records], dtype=np.float64)
    counts = np.array([d["counts"] for d in records], dtype=np.float64)
    return [a + b for a, b in zip(pack_rows(stats), pack_rows(counts))]


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


def unpack_histogram_rows(rows: list[bytes], layout: dict) -> tuple[np.ndarray, np.ndarray]:
    """(stats, counts) of histogram records of one layout, a row each, decoded together.

    stats holds HISTOGRAM_STATS and then the layout's quantiles, NaN where a record had null.
    Rows whose arrays have the same types have the same size: each such group is one buffer.
    """
    n_stats, n_bins = len(HISTOGRAM_STATS) + len(layout.get("quantiles") or ()), layout["n"]
    stats, counts = np.empty((len(rows), n_stats)), np.empty((len(rows), n_bins))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row[0], row[1 + n_stats * _TYPES[row[0]].itemsize]), []).append(i)
    for (stats_code, counts_code), members in groups.items():
        stats_type, counts_type = _TYPES[stats_code], _TYPES[counts_code]
        split = 1 + n_stats * stats_type.itemsize
        body = np.frombuffer(b"".join(rows[i] for i in members), dtype=np.uint8).reshape(len(members), -1)
        index = np.asarray(members)
        stats[index] = body[:, 1:split].copy().view(stats_type)
        counts[index] = body[:, split + 1:].copy().view(counts_type)
    return stats, counts
