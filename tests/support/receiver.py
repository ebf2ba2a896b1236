"""A real HTTP receiver for notifications, on a free loopback port, with scripted answers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.polling import wait_until

__all__ = ["Received", "Receiver"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    peer_port: int = 0  # the sender's source port: which process sent it

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def id(self) -> str | None:
        return self.headers.get("webhook-id")


class Receiver:
    """Records every POST; answers from `script` (status, headers) in turn, then `default`.

        with Receiver(script=[(500, {}), (429, {"Retry-After": "1"})]) as rx:
            ...  # rx.url, rx.received, rx.wait_for(3)

    With `hold=n`, the first n requests get no answer until `release()`, then a 503: the sender
    waits meanwhile, as on a receiver that hangs (tests kill the sender during that wait).
    """

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None, default: int = 200, hold: int = 0):
        self.script = list(script or [])
        self.default = default
        self.received: list[Received] = []
        self.held: list[Received] = []
        self._to_hold = hold
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    held = receiver._to_hold > 0
                    if held:
                        receiver._to_hold -= 1
                        status, headers = 503, {}
                    else:
                        status, headers = receiver.script.pop(0) if receiver.script else (receiver.default, {})
                    got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(),
                                   status, self.client_address[1])
                    receiver.received.append(got)
                    if held:
                        receiver.held.append(got)
                if held:
                    receiver._released.wait(60)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender is gone (a test killed it while its request was held)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Answer the held requests (503) and hold no more."""
        with self._lock:
            self._to_hold = 0
        self._released.set()

    def accepted(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def unique(self) -> list[Received]:
        """Accepted requests after dropping repeats of a webhook-id, as a receiver should."""
        seen, out = set(), []
        for r in self.accepted():
            key = r.id or r.body
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` distinct accepted messages, waiting up to `timeout` seconds."""
        wait_until(lambda: len(self.unique()) >= count, timeout=timeout,
                   what=f"{count} notifications at the receiver (have {len(self.unique())})")
        return self.unique()
