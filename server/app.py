"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fadewatch import __version__
from fadewatch.server.db import is_sqlite, make_engine, make_session_factory
from fadewatch.server.deps import Database, auth_mode_for
from fadewatch.server.errors import install_error_handlers
from fadewatch.server.metrics import MetricsMiddleware, ServerMetrics
from fadewatch.server.middleware import BodyLimitMiddleware
from fadewatch.server.migrate import check_schema, upgrade
from fadewatch.server.routes import health, runs, steps
from fadewatch.server.settings import ServerSettings, get_settings

__all__ = ["create_app", "prepare_database"]

API_PREFIX = "/api/v1"
log = logging.getLogger("fadewatch.server")


def prepare_database(settings: ServerSettings) -> Database:
    """Open the database; SQLite is migrated on the spot, anything else must be current."""
    url = settings.resolved_database_url()
    engine = make_engine(url)
    if is_sqlite(url):
        upgrade(engine)
    check_schema(engine)
    return Database(
        engine=engine,
        factory=make_session_factory(engine),
        writer_lock=threading.Lock() if is_sqlite(url) else None,
    )


def _document_raw_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves (StepBatch) to the OpenAPI."""
    from fastapi.openapi.utils import get_openapi

    from fadewatch.server.schemas import StepBatch

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            batch = StepBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(batch.pop("$defs", {}))
            schemas["StepBatch"] = batch
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


def create_app(settings: ServerSettings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = database or prepare_database(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        database.engine.dispose()

    app = FastAPI(
        title="fadewatch",
        version=__version__,
        summary="Ingest and read API for live RL post-training diagnostics.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = ServerMetrics()
    app.state.auth_mode = auth_mode_for(settings)

    app.include_router(runs.router, prefix=API_PREFIX)
    app.include_router(steps.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX, include_in_schema=False)
    install_error_handlers(app)

    _document_raw_bodies(app)
    # The dashboard at "/", reading this server's API over HTTP (never the database).
    from fadewatch.dashboard.mount import mount_dashboard

    mount_dashboard(app, api_url=settings.public_url)
    # Outermost last: metrics see every answer, the 413s of the body limit included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
