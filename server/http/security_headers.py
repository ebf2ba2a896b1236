"""Security headers on every answer, and a Content-Security-Policy on every HTML page.

Every answer gets `X-Content-Type-Options: nosniff` and a `Referrer-Policy`; an HTML page
also gets `X-Frame-Options: DENY` and a Content-Security-Policy. A page that brings its
own policy keeps it (the dashboard sends one naming the hashes of Dash's inline scripts);
the API docs get one for Swagger UI, served from its CDN, with the hashes of the page's
own inline script; any other HTML page gets a policy that allows nothing at all.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware", "ALWAYS", "HTML_ONLY", "STRICT_POLICY", "docs_policy",
           "inline_script_hashes"]

ALWAYS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin"}
HTML_ONLY = {"x-frame-options": "DENY"}
STRICT_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
SWAGGER_CDN = "https://cdn.jsdelivr.net"
SWAGGER_FAVICON = "https://fastapi.tiangolo.com"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP source expressions for the page's inline <script> elements (those without attributes)."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
            for body in _INLINE_SCRIPT.findall(html)]


def docs_policy(html: bytes) -> str:
    """Swagger UI's page: its script and styles from the CDN, its one inline script by hash."""
    return "; ".join([
        "default-src 'none'",
        f"script-src {SWAGGER_CDN} " + " ".join(inline_script_hashes(html)),
        f"style-src {SWAGGER_CDN} 'unsafe-inline'",
        f"img-src 'self' data: {SWAGGER_FAVICON}",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP answer; `docs_paths` are pages made by FastAPI's
    Swagger UI, whose inline script (it names the OpenAPI URL) is hashed as it is served.
    Only pages of the server's own making may be listed there: a hashed script is allowed."""

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...] = ()):
        self.app = app
        self.docs_paths = frozenset(p for p in docs_paths if p)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.docs_paths:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers", []), STRICT_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the (small) docs page to hash its inline script into its policy."""
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            start["headers"] = _with_headers(start.get("headers", []), docs_policy(bytes(body)))
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, capture)


def _with_headers(raw: list[tuple[bytes, bytes]], policy: str) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in raw}
    content_type = next((v for n, v in raw if n.lower() == b"content-type"), b"")
    extra = dict(ALWAYS)
    if content_type.lower().startswith(b"text/html"):
        extra.update(HTML_ONLY)
        extra["content-security-policy"] = policy
    # What a page set for itself stands.
    return list(raw) + [(n.encode(), v.encode()) for n, v in extra.items() if n.encode() not in present]
