"""The Spool class: appends, reads, acknowledges and removes one run's records (see __init__)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from fadewatch.spool.files import (
    ACK, MAX_MEMORY_RECORDS, MEMORY, META, REJECTED, Entry, fsync_dir, lock,
    safe_name, segment_name, write_atomic,
)

__all__ = ["Spool"]

log = logging.getLogger("fadewatch")


class Spool:
    """Writer and reader of one spool folder (see the module docstring)."""

    def __init__(self, path: Path, meta: dict[str, Any], *, segment_bytes: int = 32 << 20):
        self.path = Path(path)
        self.meta = meta
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()  # writer state and memory records; local file I/O only
        self._lock_fd: int | None = None
        self._writer = None
        self._segment = 0
        self._written_end: dict[int, int] = {}  # segment -> bytes fully written (when we write)
        self._memory: deque[tuple[int, bytes]] = deque()
        self._memory_only = False
        self.lines_written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        ack = self._load_ack()
        self.acked: tuple[int, int] = ack
        self._cursor: tuple[int, int] = ack
        self._read_index = 0

    # ---- opening -------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, project: str, name: str, config: Any, **kw: Any) -> Spool:
        """A new spool for a run of this process; memory-only when the disk refuses."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{stamp}-{safe_name(project)}-{safe_name(name)}-{secrets.token_hex(3)}"
        meta = {
            "format": 1, "project": project, "name": name, "config": config,
            "created": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
            "run_id": None, "status": None, "status_sent": False,
        }
        spool = cls(path, meta, **kw)
        try:
            path.mkdir(parents=True, exist_ok=False)
            spool.try_lock()
            spool._open_segment(0)
            write_atomic(path / META, json.dumps(meta).encode(), durable=True)
            fsync_dir(path.parent)
        except OSError as exc:
            spool._to_memory(f"cannot write the spool at {path}: {exc}")
        return spool

    @classmethod
    def open(cls, path: Path) -> Spool:
        """An existing spool (for ``fadewatch sync``); raises OSError/ValueError if unreadable."""
        path = Path(path)
        meta = json.loads((path / META).read_text())
        if not isinstance(meta, dict) or "project" not in meta or "name" not in meta:
            raise ValueError(f"{path / META} is not a fadewatch spool")
        return cls(path, meta)

    def try_lock(self) -> bool:
        """Take the spool's lock; False when another live process holds it."""
        if self._lock_fd is None:
            self._lock_fd = lock(self.path)
        return self._lock_fd is not None

    def _load_ack(self) -> tuple[int, int]:
        try:
            ack = json.loads((self.path / ACK).read_text())
            return int(ack["segment"]), int(ack["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return self._first_segment(), 0

    def _first_segment(self) -> int:
        try:
            numbers = [int(p.stem) for p in self.path.glob("*.jsonl") if p.stem.isdigit()]
        except OSError:
            numbers = []
        return min(numbers, default=0)

    @property
    def in_memory(self) -> bool:
        """The disk refused writes: new records live in this process only."""
        return self._memory_only

    @property
    def where(self) -> str:
        """Where undelivered records are, for messages."""
        if self._memory_only:
            return f"memory (the spool folder {self.path} could not be written; they are lost if this process ends)"
        return str(self.path)

    # ---- writing -------------------------------------------------------------------

    def _open_segment(self, number: int) -> None:
        self._writer = open(self.path / segment_name(number), "ab")
        self._segment = number
        self._written_end[number] = self._writer.tell()

    def _to_memory(self, reason: str) -> None:
        if not self._memory_only:
            log.warning("fadewatch: %s; keeping records in memory for this process", reason)
        self._memory_only = True
        self.write_errors += 1
        self.last_error = reason
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None

    def append(self, line: bytes) -> bool:
        """Add one encoded record (no newline); False if it had to be dropped."""
        data = line + b"\n"
        with self._lock:
            if not self._memory_only:
                try:
                    if self._written_end[self._segment] >= self.segment_bytes:
                        self._rollover()
                    self._writer.write(data)
                    self._writer.flush()  # in the OS now: survives a SIGKILL of this process
                    self._written_end[self._segment] += len(data)
                    self.lines_written += 1
                    return True
                except (OSError, ValueError) as exc:
                    self._to_memory(f"spool write failed: {exc}")
            if len(self._memory) >= MAX_MEMORY_RECORDS:
                return False
            self._memory.append((self.lines_written, data))
            self.lines_written += 1
            return True

    def _rollover(self) -> None:
        old = self._writer
        old.flush()
        os.fsync(old.fileno())
        old.close()
        self._open_segment(self._segment + 1)
        fsync_dir(self.path)

    def sync(self) -> None:
        """fsync what was written, so it also survives a crash of the machine."""
        with self._lock:
            writer = self._writer
            if writer is None:
                return
            try:
                os.fsync(writer.fileno())
            except (OSError, ValueError) as exc:
                self.last_error = f"spool fsync failed: {exc}"

    def update_meta(self, **changes: Any) -> None:
        """Change run.json (atomically); errors are logged, never raised."""
        with self._lock:
            self.meta.update(changes)
            payload = json.dumps(self.meta).encode()
            if not self.path.is_dir():
                return
            try:
                write_atomic(self.path / META, payload, durable=True)
            except OSError as exc:
                self.last_error = f"cannot update {self.path / META}: {exc}"

    # ---- reading and acknowledging -------------------------------------------------

    def _readable_end(self, segment: int) -> int | None:
        """Bytes of a segment that hold whole records we wrote; None: read to the last newline."""
        with self._lock:
            return self._written_end.get(segment)

    def _disk_segments(self) -> list[int]:
        try:
            return sorted(int(p.stem) for p in self.path.glob("*.jsonl") if p.stem.isdigit())
        except OSError:
            return []

    def read(self, max_records: int = 100, max_bytes: int = 4 << 20) -> list[Entry]:
        """The next records after the read cursor (at most a batch), advancing the cursor."""
        out: list[Entry] = []
        size = 0
        final = self._memory_only  # once in memory mode, the disk segments stop growing
        segment, offset = self._cursor
        if segment != MEMORY:
            for number in (n for n in self._disk_segments() if n >= segment):
                if number > segment:
                    offset = 0
                segment = number
                end = self._readable_end(number)
                try:
                    with open(self.path / segment_name(number), "rb") as f:
                        f.seek(offset)
                        while len(out) < max_records and size < max_bytes:
                            if end is not None and offset >= end:
                                break
                            line = f.readline()
                            if not line.endswith(b"\n"):
                                break  # a record still being written, or torn by a crash
                            offset += len(line)
                            size += len(line)
                            if line.strip():
                                out.append(Entry(line, self._read_index, (number, offset)))
                                self._read_index += 1
                except OSError:
                    break
                self._cursor = (segment, offset)
                if len(out) >= max_records or size >= max_bytes:
                    return out
            if not final:
                return out
            self._cursor = segment, offset = MEMORY, 0
        with self._lock:
            for index, data in self._memory:
                if len(out) >= max_records or size >= max_bytes:
                    break
                if index >= offset:
                    out.append(Entry(data, self._read_index, (MEMORY, index + 1)))
                    self._read_index += 1
                    size += len(data)
                    offset = index + 1
        self._cursor = (MEMORY, offset)
        return out

    def ack(self, entry: Entry) -> None:
        """Mark everything up to and including ``entry`` as stored on the server."""
        segment, offset = entry.end
        self.acked = entry.end
        if segment == MEMORY:
            with self._lock:
                while self._memory and self._memory[0][0] < offset:
                    self._memory.popleft()
            return
        try:
            write_atomic(self.path / ACK, json.dumps({"segment": segment, "offset": offset}).encode())
            for number in self._disk_segments():
                if number < segment:
                    (self.path / segment_name(number)).unlink()
        except OSError as exc:
            self.last_error = f"cannot write the ack marker: {exc}"

    def reject(self, entries: list[Entry]) -> None:
        """Put records the server refused aside, then acknowledge them."""
        if not entries:
            return
        try:
            with open(self.path / REJECTED, "ab") as f:
                f.writelines(e.data for e in entries)
        except OSError as exc:
            self.last_error = f"cannot write {REJECTED}: {exc}"
        self.ack(entries[-1])

    def count_pending(self) -> int:
        """Whole records after the ack marker (reads the files)."""
        segment, offset = self.acked
        total = 0
        for number in self._disk_segments():
            if number < segment:
                continue
            try:
                with open(self.path / segment_name(number), "rb") as f:
                    if number == segment:
                        f.seek(offset)
                    total += f.read().count(b"\n")
            except OSError:
                pass
        with self._lock:
            total += len(self._memory)
        return total

    @property
    def rejected_count(self) -> int:
        try:
            with open(self.path / REJECTED, "rb") as f:
                return f.read().count(b"\n")
        except OSError:
            return 0

    # ---- closing ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.flush()
                    os.fsync(self._writer.fileno())
                    self._writer.close()
                except (OSError, ValueError):
                    pass
                self._writer = None
            if self._lock_fd is not None and self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the spool folder (everything in it was delivered)."""
        self.close()
        if not self.path.exists():
            return
        for p in self.path.iterdir():
            try:
                p.unlink()
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass
