"""Errors translated to HTTP answers in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

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


async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
    log.warning("database unavailable: %s", exc.orig)
    return _json(503, "database unavailable, retry later", {"Retry-After": "2"})


async def _database(_: Request, exc: SQLAlchemyError) -> JSONResponse:
    log.exception("database error")
    return _json(503, "database error, retry later", {"Retry-After": "2"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(SQLAlchemyError, _database)
