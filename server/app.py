"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from fadewatch import __version__
from fadewatch.server.db import Database, is_sqlite, make_engine, make_session_factory
from fadewatch.server.deps import auth_mode_for
from fadewatch.server.http.errors import install_error_handlers
from fadewatch.server.ingest import IngestService
from fadewatch.server.http.metrics import MetricsMiddleware, ServerMetrics
from fadewatch.server.http.body_limit import BodyLimitMiddleware
from fadewatch.server.http.connection_reuse import ConnectionReuseMiddleware
from fadewatch.server.migrate import check_schema, upgrade
from fadewatch.server.http.openapi import document_error_answers
from fadewatch.server.http.rate_limit import rate_limiter_for
from fadewatch.server.http.security_headers import SecurityHeadersMiddleware
from fadewatch.server.alerts.evaluation.engine import AlertContext
from fadewatch.server.alerts.evaluation.rulefile import load_rules_file
from fadewatch.server.routes import (alerts, channels, compare, health, projects, rollouts, run_alerts, rules, runs,
                                     silences, steps)
from fadewatch.server.settings import ServerSettings, get_settings

__all__ = ["create_app", "prepare_database", "alert_context"]

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


def alert_context(settings: ServerSettings, clock: Callable[[], float] = time.time) -> AlertContext:
    """What the alert engine needs from this server; a bad rule file raises RulesFileError."""
    file_rules = load_rules_file(settings.alert_rules_file) if settings.alert_rules_file else []
    return AlertContext(file_rules=file_rules, public_url=settings.resolved_public_url(), clock=clock)


def create_app(
    settings: ServerSettings | None = None,
    database: Database | None = None,
    *,
    context: AlertContext | None = None,
    notifier_client: httpx.Client | None = None,
) -> FastAPI:
    """The API (and the dashboard at "/"). ``notifier_client`` posts notifications: the
    delivery worker's and the channel test's (tests inject one with a mock transport)."""
    settings = settings or get_settings()
    context = context or alert_context(settings)
    database = database or prepare_database(settings)
    own_notifier = notifier_client is None
    # Redirects are not followed: a receiver must not bounce a notification to another host.
    notifier = notifier_client or httpx.Client(follow_redirects=False, trust_env=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # What exists by now (the app, the dashboard, the libraries' modules) lives as long as the
        # process: kept out of the collector's full passes, which would otherwise walk all of it
        # every few batches (about a sixth of the CPU of a batch of hook records).
        gc.collect()
        gc.freeze()
        worker = None
        if settings.alert_delivery_enabled:
            from fadewatch.server.alerts.delivery.worker import DeliveryWorker

            worker = DeliveryWorker(database, settings, client=notifier, clock=context.clock,
                                    metrics=app.state.metrics).start()
        app.state.delivery_worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if own_notifier:
                notifier.close()
            database.engine.dispose()
            gc.unfreeze()  # a process that serves again (tests do) leaves nothing uncollectable behind

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
    app.state.rate_limiter = rate_limiter_for(settings)
    app.state.alert_context = context
    app.state.ingest = IngestService(database, context, app.state.metrics)
    app.state.delivery_worker = None
    app.state.notifier_client = notifier

    app.include_router(runs.router, prefix=API_PREFIX)
    app.include_router(steps.router, prefix=API_PREFIX)
    app.include_router(rollouts.router, prefix=API_PREFIX)
    app.include_router(run_alerts.router, prefix=API_PREFIX)
    app.include_router(projects.router, prefix=API_PREFIX)
    app.include_router(compare.router, prefix=API_PREFIX)
    for router in (alerts.router, rules.router, channels.router, silences.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX, include_in_schema=False)
    install_error_handlers(app)

    _document_raw_bodies(app)
    document_error_answers(app, API_PREFIX)
    # The dashboard at "/", reading this server's API over HTTP (never the database), at the
    # address each request came in on: public_url may be a proxy this process cannot reach.
    from fadewatch.dashboard.mount import mount_dashboard

    mount_dashboard(app, refresh_seconds=settings.dashboard_refresh_s)
    # Outermost last: metrics see every answer, the 413s of the body limit included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ConnectionReuseMiddleware, max_requests=settings.max_requests_per_connection)
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=(app.docs_url, app.swagger_ui_oauth2_redirect_url))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
