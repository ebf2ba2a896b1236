"""Generic webhooks, signed as Standard Webhooks (https://www.standardwebhooks.com).

Headers: `webhook-id` (the notification's stable id, the same on every retry),
`webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`
("v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>" keyed with the base64-decoded
secret, without its "whsec_" prefix).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

import orjson

__all__ = ["render", "signing_key", "sign", "signed_headers", "verify", "check_secret", "SECRET_PREFIX"]

SECRET_PREFIX = "whsec_"


def render(message: dict) -> str:
    return orjson.dumps(message).decode()


def signing_key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret is not base64") from None


def check_secret(secret: str) -> str:
    """A webhook secret must decode to 24-64 random bytes (Standard Webhooks)."""
    key = signing_key(secret)
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the secret decodes to {len(key)} bytes; use 24 to 64 random bytes, base64, "
                         "optionally prefixed whsec_")
    return secret


def sign(secret: str, message_id: str, timestamp: int, body: bytes | str) -> str:
    payload = body.encode() if isinstance(body, str) else body
    mac = hmac.new(signing_key(secret), f"{message_id}.{timestamp}.".encode() + payload, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(secret: str, headers, body: bytes, tolerance_s: float = 300, now: float | None = None) -> bool:
    """Receiver side: the signature matches and the timestamp is recent."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)
