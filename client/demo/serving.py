"""The server the demo logs to: one already answering at the URL, or one started here.

A server started here runs in a thread of the demo's process, on the embedded SQLite
database under the data directory, exactly as ``fadewatch server --dir DIR`` would.
Keeping it in-process means nothing outlives the demo, whatever way it ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fadewatch.api_client import ApiClient
from fadewatch.errors import FadewatchError

__all__ = ["DemoServer", "ServerUnavailable", "probe"]


class ServerUnavailable(FadewatchError):
    """No fadewatch server could be used or started at the demo's address."""


def probe(url: str, timeout: float = 1.0) -> str | None:
    """'fadewatch' when a fadewatch server answers at url, 'other' when something else does, None when nothing does."""
    with ApiClient(url, timeout=timeout) as api:
        reply = api.readyz()
    if reply.status is None:
        return None
    body = reply.body
    if isinstance(body, dict) and body.get("status") in ("ready", "unavailable") and "database" in body:
        return "fadewatch" if reply.status == 200 else "other"
    return "other"


class DemoServer:
    """``fadewatch server`` on 127.0.0.1:port with its SQLite database under data_dir, in a daemon thread."""

    def __init__(self, port: int, data_dir: Path, log_level: str = "warning"):
        import uvicorn

        from fadewatch.server.app import alert_context, create_app, prepare_database
        from fadewatch.server.settings import ServerSettings, default_database_url

        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = default_database_url(self.data_dir)
        # The demo promises the embedded SQLite default, whatever FADEWATCH_DATABASE_URL says.
        settings = ServerSettings(host="127.0.0.1", port=port, dir=self.data_dir, database_url=self.database_url)
        context = alert_context(settings)
        app = create_app(settings, prepare_database(settings), context=context)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, access_log=False)
        # Run from a thread, uvicorn leaves the signals alone: Ctrl-C reaches the demo,
        # which stops the server itself.
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fadewatch-demo-server", daemon=True)

    def start(self, timeout: float = 30.0) -> DemoServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerUnavailable(f"the server could not start on {self.url} (is the port taken?)")
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"the server did not start on {self.url} within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
