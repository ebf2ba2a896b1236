"""Liveness, readiness (checks the database) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from fadewatch.server.deps import DatabaseDep, MetricsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or read-only"}})
def readyz(db: DatabaseDep) -> JSONResponse:
    """The process can reach its database."""
    dialect = db.engine.dialect.name
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            # A read-only PostgreSQL (a standby, or default_transaction_read_only) answers
            # reads but refuses every ingest: not ready either.
            read_only = dialect == "postgresql" and conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    if read_only:
        return JSONResponse({"status": "unavailable", "database": "read-only"}, status_code=503)
    return JSONResponse({"status": "ready", "database": dialect})


@router.get("/metrics", response_class=Response)
def metrics(m: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
