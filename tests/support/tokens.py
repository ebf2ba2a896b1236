"""API tokens made straight in a test database, as `fadewatch token create` would."""

from __future__ import annotations

from fadewatch.server.auth import Scope
from fadewatch.server.db import make_engine, make_session_factory, session_scope
from fadewatch.server.store import tokens

__all__ = ["create_token"]


def create_token(db_url: str, project: str, scope: Scope = "write") -> str:
    """A new token of `project` in the database at `db_url`; returns its secret."""
    engine = make_engine(db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            secret, _ = tokens.create(session, project, scope)
    finally:
        engine.dispose()
    return secret
