"""A kept-alive connection answers at most N requests, then is closed (`Connection: close`).

Several server processes (`--workers`) share one listening socket, and a connection stays
with the process that accepted it for as long as the client keeps it alive: a few busy
senders (a bulk upload, `fadewatch sync`, a load generator) can then all sit on one process
while the other idles. Closing a connection after N answers makes its client open a new
one, which the least busy process tends to accept first (an idle one is waiting in its
event loop; a busy one is running Python). nginx (`keepalive_requests`) and Envoy
(`max_requests_per_connection`) bound a connection the same way. A new connection on the
loopback costs a fraction of a millisecond, against a batch's tens.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ConnectionReuseMiddleware"]

# Connections that close before reaching the limit leave their count behind; past this
# many remembered connections the counts start over (a connection then lives a little longer).
_MAX_TRACKED = 10_000


class ConnectionReuseMiddleware:
    """Adds `Connection: close` to the answer of a connection's `max_requests`-th request."""

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app  # max_requests: at least 1 (ServerSettings.max_requests_per_connection)
        self.max_requests = max_requests
        self._answered: dict[tuple, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client:
            await self.app(scope, receive, send)
            return
        # A connection is its two addresses. Behind a proxy whose forwarded headers uvicorn
        # trusts, `client` is the first client's address with port 0: that client's requests
        # are then counted together, and one in max_requests still closes a proxy connection.
        key = (tuple(client), tuple(scope.get("server") or ()))
        count = self._answered.pop(key, 0) + 1
        if count < self.max_requests:
            if len(self._answered) >= _MAX_TRACKED:
                self._answered.clear()
            self._answered[key] = count
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
