"""Request body limits and gzip decoding, before anything parses the body."""

from __future__ import annotations

import json
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]


class BodyTooLarge(Exception):
    pass


class BadEncoding(Exception):
    pass


class BodyLimitMiddleware:
    """Caps the (decompressed) request body at `max_bytes` and decodes `Content-Encoding: gzip`.

    Answers 413 past the cap and 400 for a body that is not valid gzip, so the routes
    only ever see plain bodies of bounded size.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _error(send, 413, f"request body over the {self.max_bytes} byte limit")
            return
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding not in (b"identity", b"gzip", b""):
            await _error(send, 415, "Content-Encoding must be gzip or absent")
            return
        try:
            body = await self._read(receive, gzip=encoding == b"gzip")
        except BodyTooLarge:
            await _error(send, 413, f"request body over the {self.max_bytes} byte limit")
            return
        except BadEncoding:
            await _error(send, 400, "body is not valid gzip")
            return

        scope["headers"] = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, gzip: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        inflater = zlib.decompressobj(wbits=31) if gzip else None
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if inflater is not None and chunk:
                try:
                    # max_length bounds the output, so a gzip bomb stops at the cap.
                    chunk = inflater.decompress(chunk, self.max_bytes + 1 - size)
                except zlib.error as exc:
                    raise BadEncoding from exc
                if inflater.unconsumed_tail:
                    raise BodyTooLarge
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if inflater is not None:
            try:
                tail = inflater.flush()
            except zlib.error as exc:
                raise BadEncoding from exc
            if not inflater.eof:
                raise BadEncoding
            size += len(tail)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(tail)
        return b"".join(chunks)


async def _error(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
