"""Dependencies shared by the routers, as Annotated aliases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fadewatch.server.alerts.engine import AlertContext
from fadewatch.server.auth import OPEN, Principal, hash_token
from fadewatch.server.db import session_scope
from fadewatch.server.metrics import ServerMetrics
from fadewatch.server.schemas import MAX_STEP, DisplayName
from fadewatch.server.settings import ServerSettings, is_loopback_host
from fadewatch.server.store import tokens

__all__ = ["Database", "DatabaseDep", "SettingsDep", "MetricsDep", "PrincipalDep", "AuthMode", "AlertContextDep",
           "ProjectName", "MAX_ID", "RunId", "ObjectId", "Offset", "StepBound"]


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


@dataclass
class AuthMode:
    """Whether the server runs open: only while bound to loopback and no token exists.

    The answer is cached for a second so a token created from the CLI takes effect
    almost at once without a query per request.
    """

    loopback: bool
    ttl: float = 1.0
    _checked_at: float = field(default=-1e9, repr=False)
    _tokens_exist: bool = field(default=True, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tokens_exist(self, db: Database) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at < self.ttl:
                return self._tokens_exist
        with db.transaction() as session:
            exist = tokens.any_active(session)
        with self._lock:
            self._tokens_exist, self._checked_at = exist, now
        return exist

    def is_open(self, db: Database) -> bool:
        return self.loopback and not self.tokens_exist(db)


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_settings_dep(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_metrics(request: Request) -> ServerMetrics:
    return request.app.state.metrics


def get_alert_context(request: Request) -> AlertContext:
    return request.app.state.alert_context


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings_dep)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
# A project in a path: what runs accept as a project name (no control characters, not blank).
ProjectName = Annotated[DisplayName, Path(description="the project's name")]
# Ids are 32-bit integer columns: a larger number names no row, and past 64 bits the database
# driver itself fails (a 500), so bounds are checked before any query.
MAX_ID = 2**31 - 1
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="the run's id")]
# Any other object's id in a path: an alert, a channel, a silence.
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
StepBound = Annotated[int | None, Query(ge=0, le=MAX_STEP)]
# The alert engine's context: rule file, public URL, clock.
AlertContextDep = Annotated[AlertContext, Depends(get_alert_context)]


def _limit_rate(request: Request, key: str) -> None:
    """429 with Retry-After once `key` is past its rate (fadewatch.server.ratelimit)."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    wait = limiter.acquire(key) if limiter is not None else None
    if wait is not None:
        raise HTTPException(
            status_code=429,
            detail=f"rate limit: {limiter.rate:g} requests a second, bursts of {limiter.burst:g}; "
            f"retry in {wait:.1f} s",
            headers={"Retry-After": limiter.retry_after(wait)},
        )


def _client_address(request: Request) -> str:
    return "address:" + (request.client.host if request.client else "unknown")


def get_principal(request: Request, db: DatabaseDep) -> Principal:
    mode: AuthMode = request.app.state.auth_mode
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if mode.is_open(db):
        _limit_rate(request, _client_address(request))
        return OPEN
    if scheme.lower() != "bearer" or not secret.strip():
        _limit_rate(request, _client_address(request))
        raise HTTPException(
            status_code=401,
            detail="this server needs a token: send `Authorization: Bearer <token>` "
            "(create one with `fadewatch token create --project P`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with db.transaction() as session:
        principal = tokens.authenticate(session, secret.strip())
    if principal is None:
        # Guessing tokens is charged to the guesser's address.
        _limit_rate(request, _client_address(request))
        raise HTTPException(
            status_code=401,
            detail="unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    _limit_rate(request, "token:" + hash_token(secret.strip()))
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def auth_mode_for(settings: ServerSettings) -> AuthMode:
    return AuthMode(loopback=is_loopback_host(settings.host))
