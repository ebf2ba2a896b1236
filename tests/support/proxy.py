"""A round-robin HTTP proxy in front of several server replicas, as a load balancer would be.

Each request goes to the next replica in turn, so consecutive batches of one run land on
different replicas. A replica that refuses the connection is skipped for the next one
(failover); a request that reached a replica which then died is answered 502, as a load
balancer answers a request that may have been processed, and the client retries it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

__all__ = ["Forwarded", "RoundRobinProxy"]

# Headers of one connection, not of the request or answer (RFC 9110 7.6.1), and the ones
# the proxy sets itself: httpx hands back the body decoded, with its own length.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host",
        "content-length"}
_NOT_BACK = _HOP | {"content-encoding"}


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy passed on, and the answer the replica gave (None: none came)."""

    backend: str
    method: str
    path: str
    status: int | None


class RoundRobinProxy:
    """``with RoundRobinProxy([url_a, url_b]) as proxy:`` ... ``proxy.url``, ``proxy.forwarded``."""

    def __init__(self, backends: list[str], timeout: float = 30.0):
        self.backends = list(backends)
        self.forwarded: list[Forwarded] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive towards the client, as a real balancer

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                status, reply_headers, content = proxy._pass_on(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in reply_headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 - the stdlib's names

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="proxy", daemon=True)

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _pass_on(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        for _ in self.backends:
            with self._lock:
                backend = self.backends[next(self._turn) % len(self.backends)]
            try:
                r = self._client.request(method, backend + path, headers=headers, content=body)
            except httpx.ConnectError:
                self._note(backend, method, path, None)
                continue  # nothing reached this replica: the next one gets the request
            except httpx.TransportError as exc:
                self._note(backend, method, path, None)
                return 502, [("content-type", "text/plain")], f"replica {backend} failed: {exc!r}".encode()
            self._note(backend, method, path, r.status_code)
            return r.status_code, [(k, v) for k, v in r.headers.multi_items() if k.lower() not in _NOT_BACK], r.content
        return 502, [("content-type", "text/plain")], b"no replica answered"

    def _note(self, backend: str, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.forwarded.append(Forwarded(backend, method, path, status))

    def answered(self, backend: str, method: str, path_part: str) -> int:
        """Requests of this method, with path_part in their path, that the backend answered 2xx."""
        with self._lock:
            return sum(1 for f in self.forwarded if f.backend == backend and f.method == method
                       and path_part in f.path and f.status is not None and 200 <= f.status < 300)
