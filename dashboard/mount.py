"""Serving the Dash (WSGI) app from an ASGI server: under the API server at "/", or alone.

The dashboard reads the server's API over HTTP even in-process, so its WSGI handlers run
in a thread pool of their own: handlers that wait on the API can never take the threads
the API itself needs to answer them.
"""

from __future__ import annotations

import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor

from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Match, Mount
from starlette.types import Receive, Scope, Send

from fadewatch.dashboard.context import API_URL_ENVIRON

__all__ = ["WsgiBridge", "DashboardMount", "mount_dashboard", "dashboard_asgi", "API_PATHS"]

# Paths the dashboard never answers, so the API's own 404 and 405 answers stand.
API_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")
MAX_BODY = 8 * 1024 * 1024


def _own_url(scope: Scope) -> str | None:
    server = scope.get("server")
    if not server:
        return None
    host, port = server[0], server[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class WsgiBridge:
    """A minimal ASGI-to-WSGI adapter for small, buffered responses (Dash sends nothing else)."""

    def __init__(self, wsgi_app, api_url: str | None = None, workers: int = 8):
        self.wsgi_app = wsgi_app
        self.api_url = api_url
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fadewatch-dashboard")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # only when served alone
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.pool.shutdown(wait=False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _plain(send, 413, b"request body too large")
                return
        environ = self._environ(scope, bytes(body))
        status, headers, payload = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._call, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _environ(self, scope: Scope, body: bytes) -> dict:
        root = scope.get("root_path", "")
        path = scope["path"]
        if root and path.startswith(root):
            path = path[len(root):]
        server = scope.get("server") or ("127.0.0.1", 80)
        environ = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
            "PATH_INFO": path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            API_URL_ENVIRON: self.api_url or _own_url(scope),
        }
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if name == "CONTENT_LENGTH":
                continue
            key = f"HTTP_{name}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call(self, environ: dict) -> tuple[int, list, bytes]:
        started: dict = {}

        def start_response(status, headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            return lambda chunk: None

        result = self.wsgi_app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started["status"], started["headers"], payload


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})


class DashboardMount(Mount):
    """Mount at "/" that leaves the API's paths alone, whatever order routes were added in."""

    def matches(self, scope: Scope):
        path = scope.get("path", "")
        if scope["type"] == "http" and any(path == p.rstrip("/") or path.startswith(p) for p in API_PATHS):
            return Match.NONE, {}
        return super().matches(scope)


def dashboard_asgi(api_url: str | None = None, token: str | None = None, **options):
    """The dashboard as an ASGI app (gzip on): `api_url` None means "the server it runs in"."""
    from fadewatch.dashboard.app import create_dash_app

    dash_app = create_dash_app(api_url=api_url, token=token, **options)
    # Level 5: within 2% of level 9's size on chart JSON, at a quarter of the time.
    return GZipMiddleware(WsgiBridge(dash_app.server, api_url=api_url), minimum_size=1024, compresslevel=5)


def mount_dashboard(app, api_url: str | None = None, token: str | None = None, **options) -> None:
    """Serve the dashboard at "/" of a Starlette/FastAPI app; its API routes keep precedence."""
    app.router.routes.append(DashboardMount("/", app=dashboard_asgi(api_url, token, **options),
                                            name="dashboard"))
