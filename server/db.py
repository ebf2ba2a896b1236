"""Engine and the managed session scope: one transaction per unit of work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "make_engine", "make_session_factory", "session_scope", "is_sqlite"]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _json_dumps(value) -> str:
    # orjson is several times faster than json on the ingest path, and writes NaN as null.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the dashboard read while a batch is being written.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@dataclass
class Database:
    engine: Engine
    factory: sessionmaker[Session]
    # SQLite has one writer at a time; queueing writers here, in order, beats its
    # busy-wait retry loop, whose backoff sleeps inflate tail latency under contention.
    writer_lock: threading.Lock | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with session_scope(self.factory) as session:
            yield session

    @contextmanager
    def write_transaction(self) -> Iterator[Session]:
        if self.writer_lock is None:
            with self.transaction() as session:
                yield session
            return
        with self.writer_lock, self.transaction() as session:
            yield session
