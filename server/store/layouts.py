"""A run's layouts (server/packed.py): the names and bins its packed rows refer to by id."""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fadewatch.server.models import Layout
from fadewatch.server.packed import layout_digest

__all__ = ["Layouts", "blob_params"]


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
    return {"blob": b"".join(rows), "starts": starts, "sizes": sizes}


class Layouts:
    """Layout ids by document and documents by id, for one run, cached for one transaction."""

    def __init__(self, session: Session, run_id: int) -> None:
        self.session = session
        self.run_id = run_id
        self._ids: dict[str, int] = {}
        self._docs: dict[int, object] = {}

    def ids(self, docs: list) -> list[int]:
        """The id of each document, stored now where the run has none yet."""
        digests = [layout_digest(d) for d in docs]
        missing = {dg: d for dg, d in zip(digests, docs) if dg not in self._ids}
        if missing:
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
        wanted = [i for i in set(layout_ids) if i not in self._docs]
        if wanted:
            self._load(Layout.id.in_(wanted))

    def _load(self, where) -> None:
        rows = self.session.execute(
            select(Layout.id, Layout.digest, Layout.doc).where(Layout.run_id == self.run_id, where))
        for layout_id, digest, doc in rows:
            self._ids[digest] = layout_id
            self._docs[layout_id] = orjson.loads(doc)
