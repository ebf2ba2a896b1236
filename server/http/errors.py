"""Errors translated to HTTP answers in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from fadewatch.server.store.errors import Conflict, Forbidden, NotFound

__all__ = ["install_error_handlers"]

log = logging.getLogger("fadewatch.server")


def _json(status: int, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _short(part):
    # A location can be a user-supplied dict key of any length.
    if isinstance(part, str) and len(part) > 80:
        return part[:77] + "..."
    return part


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is left out: it can be megabytes, and it is the caller's own.
    errors = [
        {"loc": [_short(part) for part in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()[:20]
    ]
    return _json(422, errors)


async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
    return _json(404, str(exc))


async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
    return _json(403, str(exc))


async def _conflict(_: Request, exc: Conflict | IntegrityError) -> JSONResponse:
    return _json(409, str(exc) if isinstance(exc, Conflict) else "conflicts with stored data")


async def _data_error(_: Request, exc: DataError) -> JSONResponse:
    return _json(422, "a value does not fit the database column")


RETRY_AFTER = {"Retry-After": "2"}
# SQLite result codes (the low byte of an extended code) and PostgreSQL SQLSTATEs that mean
# the database refuses writes: nothing of the request was stored and a retry may succeed
# once an operator has made room or made the database writable again.
SQLITE_READONLY, SQLITE_FULL = 8, 13
PG_READ_ONLY, PG_DISK_FULL = "25006", "53100"


def _write_refusal(exc: SQLAlchemyError) -> JSONResponse | None:
    """507 when the database is full, 503 when it is read-only; None for other errors."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    code = getattr(orig, "sqlite_errorcode", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if (code is not None and code & 0xFF == SQLITE_FULL) or sqlstate == PG_DISK_FULL:
        log.warning("database full: %s", orig)
        return _json(507, "the database is full: nothing of this request was stored; "
                     "retry once space is freed", RETRY_AFTER)
    if (code is not None and code & 0xFF == SQLITE_READONLY) or sqlstate == PG_READ_ONLY:
        log.warning("database read-only: %s", orig)
        return _json(503, "the database is read-only: nothing of this request was stored; "
                     "retry once it accepts writes", RETRY_AFTER)
    return None


async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
    refusal = _write_refusal(exc)
    if refusal is not None:
        return refusal
    log.warning("database unavailable: %s", exc.orig)
    return _json(503, "database unavailable, retry later", RETRY_AFTER)


async def _database(_: Request, exc: SQLAlchemyError) -> JSONResponse:
    refusal = _write_refusal(exc)
    if refusal is not None:
        return refusal
    log.exception("database error")
    return _json(503, "database error, retry later", RETRY_AFTER)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(SQLAlchemyError, _database)
