"""Per-request access to the app's settings and API client, from inside callbacks and layouts.

Several dashboards can live in one process (tests, the server and a standalone one), so
nothing is global: each Flask app carries its DashboardConfig, and the client for a request
is built from it, the API address the mount saw, and the browser's token cookie.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import flask

from fadewatch.api_client import ApiClient

__all__ = ["DashboardConfig", "CONFIG_KEY", "API_URL_ENVIRON", "TOKEN_COOKIE", "API_TIMEOUT_S", "config", "client",
           "href"]

CONFIG_KEY = "FADEWATCH_DASHBOARD"
API_URL_ENVIRON = "fadewatch.api_url"  # set by the mount: the server's own address
TOKEN_COOKIE = "fadewatch_token"
# Reads of a long run take longer than the hook's batch posts (the client's default).
API_TIMEOUT_S = 30.0


@dataclass
class DashboardConfig:
    api_url: str | None
    token: str | None
    prefix: str
    refresh_ms: int
    _clients: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client_for(self, base_url: str, token: str | None) -> ApiClient:
        """One pooled client per (address, token): connections are reused across callbacks."""
        key = (base_url, token)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                if len(self._clients) > 32:  # tokens from many browsers: keep the pool bounded
                    for old in self._clients.values():
                        old.close()
                    self._clients.clear()
                found = self._clients[key] = ApiClient(base_url, token, timeout=API_TIMEOUT_S)
            return found


def config() -> DashboardConfig:
    return flask.current_app.config[CONFIG_KEY]


def client() -> ApiClient:
    """The API client for the current request."""
    cfg = config()
    base = cfg.api_url or flask.request.environ.get(API_URL_ENVIRON)
    if not base:
        raise RuntimeError("the dashboard has no API address: pass api_url to create_dash_app")
    token = cfg.token or flask.request.cookies.get(TOKEN_COOKIE) or None
    return cfg.client_for(base, token)


def href(path: str) -> str:
    """A link inside the dashboard, under its path prefix."""
    return config().prefix + path.lstrip("/")
