"""Prometheus metrics of one server process, in a registry of its own."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServerMetrics", "MetricsMiddleware"]


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fadewatch_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fadewatch_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.steps_stored = Counter(
            "fadewatch_steps_ingested", "Step rows stored.", registry=self.registry
        )
        self.steps_duplicate = Counter(
            "fadewatch_steps_duplicate",
            "Step records not stored because the step was already there.",
            registry=self.registry,
        )
        self.batches = Counter(
            "fadewatch_batches_ingested", "Step batches accepted.", registry=self.registry
        )
        self.alert_evaluation_failures = Counter(
            "fadewatch_alert_evaluation_failures",
            "Batches whose steps were stored but whose alert evaluation failed (rolled back alone).",
            registry=self.registry,
        )
        self.alert_deliveries = Counter(
            "fadewatch_alert_deliveries",
            "Notification delivery attempts by channel kind and outcome (delivered, retry, failed).",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            # Route templates, not raw paths, keep the label set small.
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
