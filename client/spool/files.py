"""The files of a spool folder: their names, atomic writes, the lock, and finding spools.

See the package docstring for what a spool holds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock
    fcntl = None

__all__ = [
    "ACK", "LOCK", "MAX_MEMORY_RECORDS", "MEMORY", "META", "REJECTED",
    "Entry", "find_spools", "fsync_dir", "lock", "safe_name", "segment_name", "write_atomic",
]

META = "run.json"
ACK = "ack"
LOCK = "lock"
REJECTED = "rejected.jsonl"
MEMORY = 1 << 62  # the segment number of records held in memory
MAX_MEMORY_RECORDS = 10_000


class Entry(NamedTuple):
    """One spooled record line, its index in this spool's stream, and the position after it."""

    data: bytes
    index: int
    end: tuple[int, int]


def segment_name(number: int) -> str:
    return f"{number:08d}.jsonl"


def safe_name(text: str, limit: int = 48) -> str:
    """A piece of a folder name made from a project or run name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:limit] or "run"


def write_atomic(path: Path, payload: bytes, durable: bool = False) -> None:
    """Replace a small file in one step; ``durable`` also fsyncs it and its folder."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make new names in a folder survive a crash of the machine (POSIX only)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def lock(path: Path) -> int | None:
    """Take the exclusive lock of a spool folder: its fd, or None when another process holds it.

    Where there is no flock (Windows) every spool counts as free; returns -1 then.
    """
    if fcntl is None:
        return -1
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def find_spools(root: Path) -> list[Path]:
    """Spool folders at ``root``: itself, its children, or those under ``root/spool``."""
    root = Path(root).expanduser()
    if (root / META).is_file():
        return [root]
    for base in (root / "spool", root):
        if base.is_dir():
            found = sorted(p for p in base.iterdir() if (p / META).is_file())
            if found:
                return found
    return []
