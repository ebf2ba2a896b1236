"""Dependencies shared by the routers, as Annotated aliases."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Path, Query, Request

from fadewatch.protocol.limits import MAX_STEP
from fadewatch.server.alerts.evaluation.engine import AlertContext
from fadewatch.server.auth import OPEN, Principal, hash_token
from fadewatch.server.db import Database
from fadewatch.server.http.metrics import ServerMetrics
from fadewatch.server.ingest import IngestService
from fadewatch.server.schemas import DisplayName
from fadewatch.server.settings import ServerSettings, is_loopback_host
from fadewatch.server.store import tokens

__all__ = ["DatabaseDep", "ProjectRead", "ProjectWrite", "ProjectAccess", "SettingsDep", "MetricsDep", "PrincipalDep", "AuthMode", "AlertContextDep", "NotifierClientDep", "IngestDep",
           "ProjectName", "MAX_ID", "RunId", "ObjectId", "Offset", "StepBound"]


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


def get_ingest(request: Request) -> IngestService:
    return request.app.state.ingest


def get_notifier_client(request: Request) -> httpx.Client:
    return request.app.state.notifier_client


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
IngestDep = Annotated[IngestService, Depends(get_ingest)]
# The HTTP client that posts notifications (the delivery worker's too); tests inject a transport.
NotifierClientDep = Annotated[httpx.Client, Depends(get_notifier_client)]


def _limit_rate(request: Request, key: str) -> None:
    """429 with Retry-After once `key` is past its rate (fadewatch.server.http.rate_limit)."""
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


@dataclass(frozen=True)
class ProjectAccess:
    """A project named in the path that the caller has been checked to read (or change)."""

    name: str
    who: Principal


def _project_reader(project: ProjectName, who: PrincipalDep) -> ProjectAccess:
    who.require_project(project, write=False)
    return ProjectAccess(project, who)


def _project_writer(project: ProjectName, who: PrincipalDep) -> ProjectAccess:
    who.require_project(project, write=True)
    return ProjectAccess(project, who)


# The permission rule of every /projects/{project}/... route, written once (Principal.require_project).
ProjectRead = Annotated[ProjectAccess, Depends(_project_reader)]
ProjectWrite = Annotated[ProjectAccess, Depends(_project_writer)]
