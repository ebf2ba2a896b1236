"""`fadewatch dashboard`: the dashboard alone, against a remote server's read API."""

from __future__ import annotations

__all__ = ["serve"]


def serve(api_url: str, host: str = "127.0.0.1", port: int = 8701, token: str | None = None,
          refresh_seconds: float = 2.0, log_level: str = "warning") -> None:
    import uvicorn

    from fadewatch.dashboard.mount import dashboard_asgi

    app = dashboard_asgi(api_url=api_url, token=token, refresh_seconds=refresh_seconds)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
