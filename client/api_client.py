"""A thin HTTP client for the ingest server, with every answer sorted into a kind.

No method raises on I/O trouble: each returns a ``Reply`` whose ``kind`` tells the caller
what to do next (deliver, retry later, split, re-create the run, put aside, stop).
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import json
import time
from typing import Any

import httpx

__all__ = ["ApiClient", "Reply"]

API = "/api/v1"
# An idle connection is dropped by the client before the server closes it (uvicorn after
# 5 s, proxies later): at equal timeouts a batch sent as the server hangs up fails with a
# ReadError, which a trainer stepping every ~5 s would meet on a few percent of its batches.
KEEPALIVE_EXPIRY_S = 2.0
RETRIABLE = {408, 425, 429}
# Answers whose Retry-After the hook obeys: rate limited, database away or read-only (503),
# database full (507). A long outage then costs one small request per Retry-After, instead
# of backing off to the cap and resuming up to a cap's length after the server recovers.
HONOURS_RETRY_AFTER = {429, 503, 507}


@dataclasses.dataclass(frozen=True)
class Reply:
    """What one request came back with; ``status`` is None when no HTTP answer came."""

    status: int | None
    body: Any = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def server_delay(self) -> float | None:
        """The wait the server asked for, if this is an answer that may ask for one."""
        return self.retry_after if self.status in HONOURS_RETRY_AFTER else None

    @property
    def kind(self) -> str:
        """ok | retry | auth | not_found | too_large | rejected."""
        s = self.status
        if s is None or s >= 500 or s in RETRIABLE:
            return "retry"
        if 200 <= s < 300:
            return "ok"
        if s in (401, 403):
            return "auth"
        if s == 404:
            return "not_found"
        if s == 413:
            return "too_large"
        return "rejected"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = body.get("detail", body) if isinstance(body, dict) else body
        text = text if isinstance(text, str) else json.dumps(text)
    except ValueError:
        text = response.text
    return " ".join(str(text).split())[:300]


def batch_body(lines: list[bytes]) -> bytes:
    """The JSON batch ``{"records": [...]}`` built from already-encoded record lines."""
    return b'{"records":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"


class ApiClient:
    """The calls the hook and ``fadewatch sync`` make; ``transport`` is injectable for tests."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        compress: bool = True,
    ):
        from fadewatch import __version__

        headers = {"User-Agent": f"fadewatch/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.compress = compress
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
            follow_redirects=True,
        )

    def _request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Reply:
        try:
            if json_body is not None:
                content = json.dumps(json_body, separators=(",", ":")).encode()
                headers = {**(headers or {}), "Content-Type": "application/json"}
            response = self._http.request(method, API + path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Reply(None, error=f"{method} {path}: {type(exc).__name__}: {exc}".strip())
        except Exception as exc:  # noqa: BLE001 - a transport bug must not kill the sender
            return Reply(None, error=f"{method} {path}: unexpected {type(exc).__name__}: {exc}")
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            return Reply(response.status_code, body)
        return Reply(
            response.status_code,
            body,
            error=f"{method} {path}: HTTP {response.status_code}: {_detail(response)}",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def create_run(self, project: str, name: str, config: Any = None) -> Reply:
        """Create the run, or resume it when project + name exist (safe to repeat)."""
        return self._request("POST", "/runs", json_body={"project": project, "name": name, "config": config})

    def post_steps(self, run_id: int, lines: list[bytes]) -> Reply:
        """Send encoded step records as one batch."""
        body = batch_body(lines)
        headers = {"Content-Type": "application/json"}
        if self.compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return self._request("POST", f"/runs/{run_id}/steps", content=body, headers=headers)

    def patch_run(self, run_id: int, status: str, error: str | None = None) -> Reply:
        body = {"status": status} if error is None else {"status": status, "error": error}
        return self._request("PATCH", f"/runs/{run_id}", json_body=body)

    def healthz(self) -> Reply:
        try:
            response = self._http.get("/healthz")
        except httpx.HTTPError as exc:
            return Reply(None, error=f"GET /healthz: {type(exc).__name__}: {exc}")
        return Reply(response.status_code, None if response.is_success else response.text)

    def close(self) -> None:
        self._http.close()
