"""A run's layouts (server/packed.py): the names and bins its packed rows refer to by id."""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fadewatch.server.models import Layout
from fadewatch.server.packed import layout_digest

__all__ = ["Layouts", "blob_params", "array_literal"]

# A run with up to this many layouts has them all read at once, in one query per transaction.
_ALL_AT_ONCE = 64


def array_literal(values) -> str:
    """A PostgreSQL array literal of numbers or text, for a parameter cast to an array type.

    psycopg dumps a list element by element in Python; one literal made by one join is a
    single string. Text elements are quoted (backslash and quote escaped), so any text is safe.
    """
    items = list(values)
    if items and isinstance(items[0], str):
        return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items) + "}"
    # repr of a float is its shortest exact form, which PostgreSQL reads back to the same float.
    return "{" + ",".join(map(repr, items)) + "}"


def blob_params(rows: list[bytes]) -> dict:
    """Packed rows as one bytes parameter, with where each starts (1-based) and its size.

    PostgreSQL statements take them as `substring(:blob FROM start FOR size)`: one bytes value
    crosses the wire in binary, where an array of them would be escaped as text.
    """
    sizes = [len(r) for r in rows]
    starts, at = [], 1
    for size in sizes:
        starts.append(at)
        at += size
    return {"blob": b"".join(rows), "starts": array_literal(starts), "sizes": array_literal(sizes)}


class Layouts:
    """Layout ids by document and documents by id, for one run, cached for one transaction."""

    def __init__(self, session: Session, run_id: int) -> None:
        self.session = session
        self.run_id = run_id
        self._ids: dict[str, int] = {}
        self._docs: dict[int, object] = {}
        self._complete: bool | None = None  # None: not read yet; True: every layout of the run is here

    def _read_run(self) -> None:
        """All of the run's layouts in one query, as long as it has few (most runs have a handful)."""
        rows = self.session.execute(
            select(Layout.id, Layout.digest, Layout.doc).where(Layout.run_id == self.run_id)
            .order_by(Layout.id).limit(_ALL_AT_ONCE + 1)).all()
        self._complete = len(rows) <= _ALL_AT_ONCE
        for layout_id, digest, doc in rows[:_ALL_AT_ONCE]:
            self._ids[digest] = layout_id
            self._docs[layout_id] = orjson.loads(doc)

    def ids(self, docs: list) -> list[int]:
        """The id of each document, stored now where the run has none yet."""
        if self._complete is None:
            self._read_run()
        digests = [layout_digest(d) for d in docs]
        missing = {dg: d for dg, d in zip(digests, docs) if dg not in self._ids}
        if missing:
            if not self._complete:
                self._load(Layout.digest.in_(list(missing)))
            # In digest order: concurrent batches take the unique index's locks in one order.
            new = [{"run_id": self.run_id, "digest": dg, "doc": orjson.dumps(d).decode()}
                   for dg, d in sorted(missing.items()) if dg not in self._ids]
            if new:
                # Batches of one run may race to store the same layout: the first one wins.
                dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(Layout)
                self.session.execute(stmt.on_conflict_do_nothing(index_elements=["run_id", "digest"]), new)
                self._load(Layout.digest.in_([r["digest"] for r in new]))
        return [self._ids[dg] for dg in digests]

    def id(self, doc) -> int:
        return self.ids([doc])[0]

    def doc(self, layout_id: int):
        if layout_id not in self._docs:
            self.load_ids([layout_id])
        return self._docs[layout_id]

    def load_ids(self, layout_ids) -> None:
        if self._complete is None:
            self._read_run()
        wanted = [i for i in set(layout_ids) if i not in self._docs]
        if wanted:
            self._load(Layout.id.in_(wanted))

    def _load(self, where) -> None:
        rows = self.session.execute(
            select(Layout.id, Layout.digest, Layout.doc).where(Layout.run_id == self.run_id, where))
        for layout_id, digest, doc in rows:
            self._ids[digest] = layout_id
            self._docs[layout_id] = orjson.loads(doc)
