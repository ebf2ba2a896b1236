"""One HTTP delivery of a rendered notification: target check, signing, POST, verdict.

Used by the delivery worker for the outbox and by the channel test endpoint. The target
is checked against the server's address policy right before connecting, and the request
goes to the checked address itself (Host header and TLS name kept), so a DNS answer that
changes in between cannot send it elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from fadewatch import __version__
from fadewatch.protocol.answers import HONOURS_RETRY_AFTER, is_retriable, parse_retry_after
from fadewatch.server.alerts.delivery.ssrf import Resolver, Target, TargetRefused, TargetUnresolved, resolve_target
from fadewatch.server.alerts.delivery.webhooks import signed_headers
from fadewatch.server.settings import ServerSettings

__all__ = ["Outcome", "send"]


@dataclass(frozen=True)
class Outcome:
    outcome: str  # delivered | retry | failed
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None


def _pinned(target: Target, address: str) -> tuple[str, dict[str, str], dict]:
    """The URL with the checked address in place of the host, the Host header and TLS name."""
    parts = urlsplit(target.url)
    ip = f"[{address}]" if ":" in address else address
    default = 443 if target.scheme == "https" else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    host_header = host if target.port == default else f"{host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    url = urlunsplit((target.scheme, f"{ip}:{target.port}", parts.path or "/", parts.query, ""))
    return url, {"host": host_header}, extensions


def send(
    client: httpx.Client,
    settings: ServerSettings,
    *,
    kind: str,
    url: str,
    secret: str | None,
    message_id: str,
    body: str,
    clock: Callable[[], float] = time.time,
    resolver: Resolver | None = None,
) -> Outcome:
    """POST one notification; never raises for anything the network or receiver does."""
    started = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        target, address = resolve_target(
            url,
            allow_loopback=settings.alert_allow_loopback_targets,
            allow_private=settings.alert_allow_private_targets,
            resolver=resolver,
        )
    except TargetRefused as exc:
        # DNS failures are often passing; a refused address is not.
        retry = isinstance(exc, TargetUnresolved)
        return Outcome("retry" if retry else "failed", None, str(exc)[:500], took())
    pinned_url, headers, extensions = _pinned(target, address)
    payload = body.encode()
    headers.update({"content-type": "application/json", "user-agent": f"fadewatch/{__version__}"})
    if kind == "webhook":
        try:
            headers.update(signed_headers(secret or "", message_id, int(clock()), payload))
        except ValueError as exc:
            return Outcome("failed", None, f"cannot sign: {exc}", took())
    try:
        r = client.post(pinned_url, content=payload, headers=headers, extensions=extensions,
                        timeout=settings.alert_delivery_timeout_s)
    except httpx.HTTPError as exc:
        # The delivery log is readable with a read token; a Slack URL is a secret.
        error = f"{type(exc).__name__}: {exc}".replace(pinned_url, "<url>").replace(url, "<url>")
        return Outcome("retry", None, error[:500], took())
    code = r.status_code
    if 200 <= code < 300:
        return Outcome("delivered", code, None, took())
    detail = f"HTTP {code}: {r.text[:200]}"
    if is_retriable(code):
        wait = parse_retry_after(r.headers.get("retry-after"), clock()) if code in HONOURS_RETRY_AFTER else None
        return Outcome("retry", code, detail, took(), wait)
    return Outcome("failed", code, detail, took())
