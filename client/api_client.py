"""The HTTP client of the fadewatch API, for everyone who talks to it: the hook's sender,
``fadewatch sync``, the demo, the dashboard and ``fadewatch report``.

One request path, two ways to call it:

- ``send()`` and the writes (``create_run``, ``post_steps``, ``patch_run``) never raise:
  each returns a ``Reply`` whose ``kind`` tells the training side what to do next
  (deliver, retry later, split, re-create the run, put aside, stop).
- ``request()``, ``get()`` and the reads (``runs``, ``series``, ``alerts``, ...) return
  the decoded JSON, or raise a ``ServerError`` (fadewatch.errors) saying why not.

``transport`` is injectable (``httpx.MockTransport`` in tests).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from typing import Any

import httpx

from fadewatch.errors import NotFoundError, ServerError, Unauthorized, Unavailable
from fadewatch.protocol.answers import HONOURS_RETRY_AFTER, answer_kind, error_detail, parse_retry_after
from fadewatch.protocol.limits import MAX_KEYS_PER_REQUEST

try:  # installed with the server and the dashboard, whose reads bring megabytes of numbers
    from orjson import loads as _loads
except ImportError:  # the training side alone: its answers are small
    _loads = json.loads

__all__ = ["ApiClient", "Reply", "batch_body", "API", "KEEPALIVE_EXPIRY_S"]

API = "/api/v1"
# An idle connection is dropped by the client before the server closes it (uvicorn after
# 5 s, proxies later): at equal timeouts a batch sent as the server hangs up fails with a
# ReadError, which a trainer stepping every ~5 s would meet on a few percent of its batches.
KEEPALIVE_EXPIRY_S = 2.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """What one request came back with; ``status`` is None when no HTTP answer came."""

    status: int | None
    body: Any = None
    error: str | None = None  # "METHOD /path: what went wrong", for logs and counters
    retry_after: float | None = None
    detail: str | None = None  # the server's own explanation (or the transport's), one line

    @property
    def server_delay(self) -> float | None:
        """The wait the server asked for, if this is an answer that may ask for one."""
        return self.retry_after if self.status in HONOURS_RETRY_AFTER else None

    @property
    def kind(self) -> str:
        """ok | retry | auth | not_found | too_large | rejected."""
        return answer_kind(self.status)


def batch_body(lines: list[bytes]) -> bytes:
    """The JSON batch ``{"records": [...]}`` built from already-encoded record lines."""
    return b'{"records":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"


def _detail(response: httpx.Response, body: Any) -> str:
    text_plain = response.headers.get("content-type", "").startswith("text/plain")
    fallback = response.text if text_plain else f"{response.status_code} {response.reason_phrase}"
    return error_detail(body, fallback)


class ApiClient:
    """One server's API; thread-safe, with pooled connections. Close it (or use ``with``)."""

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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the one request path ----------------------------------------------------------

    def send(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None,
             content: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        """One request to ``/api/v1{path}``; never raises. None-valued params are left out."""
        return self._exchange(method, API + path, path, params, json_body, content, headers)

    def _exchange(self, method: str, target: str, label: str, params: dict[str, Any] | None, json_body: Any,
                  content: bytes | None, headers: dict[str, str] | None) -> Reply:
        where = f"{method} {label}"
        try:
            if json_body is not None:
                content = json.dumps(json_body, separators=(",", ":")).encode()
                headers = {**(headers or {}), "Content-Type": "application/json"}
            query = {k: v for k, v in (params or {}).items() if v is not None}
            response = self._http.request(method, target, params=query, content=content, headers=headers)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}".strip()
            return Reply(None, error=f"{where}: {detail}", detail=detail)
        except Exception as exc:  # noqa: BLE001 - a transport bug must not kill the sender
            detail = f"unexpected {type(exc).__name__}: {exc}"
            return Reply(None, error=f"{where}: {detail}", detail=detail)
        try:
            body = _loads(response.content) if response.content else None
        except ValueError:
            body = None
        status = response.status_code
        if 200 <= status < 300:
            return Reply(status, body)
        detail = _detail(response, body)
        return Reply(status, body, error=f"{where}: HTTP {status}: {detail}",
                     retry_after=parse_retry_after(response.headers.get("Retry-After")), detail=detail)

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One request to ``/api/v1{path}``: the decoded answer (None when empty), or a ServerError."""
        reply = self.send(method, path, params=params, json_body=json)
        if reply.kind == "ok":
            return reply.body
        raise self._error(reply)

    def _error(self, reply: Reply) -> ServerError:
        status, detail = reply.status, reply.detail or ""
        if status is None:
            return Unavailable(f"{self.url} did not answer: {detail}")
        if status == 401:
            return Unauthorized("this server needs an API token", status)
        if status == 404:
            return NotFoundError(detail, status)
        if status >= 500:
            return Unavailable(f"{self.url} answered {status}: {detail}", status)
        return ServerError(detail, status)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    # ---- writes of the training side (Reply, never raising) ---------------------------

    def create_run(self, project: str, name: str, config: Any = None) -> Reply:
        """Create the run, or resume it when project + name exist (safe to repeat)."""
        return self.send("POST", "/runs", json_body={"project": project, "name": name, "config": config})

    def post_steps(self, run_id: int, lines: list[bytes]) -> Reply:
        """Send encoded step records as one batch (gzip unless ``compress`` is off)."""
        body = batch_body(lines)
        headers = {"Content-Type": "application/json"}
        if self.compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return self.send("POST", f"/runs/{run_id}/steps", content=body, headers=headers)

    def patch_run(self, run_id: int, status: str, error: str | None = None) -> Reply:
        body = {"status": status} if error is None else {"status": status, "error": error}
        return self.send("PATCH", f"/runs/{run_id}", json_body=body)

    def readyz(self) -> Reply:
        """GET /readyz (outside the API prefix): whether the server and its database serve."""
        return self._exchange("GET", "/readyz", "/readyz", None, None, None, None)

    # ---- reads (decoded JSON, or a ServerError) ----------------------------------------

    def runs(self, project: str | None = None, status: str | None = None, limit: int = 500) -> list[dict]:
        return self.get("/runs", project=project, status=status, limit=limit)["runs"]

    def run(self, run_id: int) -> dict:
        return self.get(f"/runs/{int(run_id)}")

    def keys(self, run_id: int) -> list[str]:
        return self.get(f"/runs/{int(run_id)}/keys")

    def series(self, run_id: int, keys: list[str], max_points: int | None = None,
               min_step: int | None = None, max_step: int | None = None) -> dict:
        """{"downsampled", "last_step", "series": {key: {steps, values, min, max}}}; keys in chunks."""
        out: dict[str, Any] = {"downsampled": False, "last_step": None, "series": {}}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), MAX_KEYS_PER_REQUEST):
            chunk = keys[i:i + MAX_KEYS_PER_REQUEST]
            part = self.get(f"/runs/{int(run_id)}/series", keys=",".join(chunk), max_points=max_points,
                            min_step=min_step, max_step=max_step)
            out["downsampled"] = out["downsampled"] or part["downsampled"]
            out["last_step"] = part["last_step"]
            out["series"].update(part["series"])
        return out

    def histograms(self, run_id: int, name: str, max_steps: int | None = None,
                   min_step: int | None = None, max_step: int | None = None) -> dict:
        return self.get(f"/runs/{int(run_id)}/histograms", name=name, max_steps=max_steps,
                        min_step=min_step, max_step=max_step)

    def alerts(self, **params: Any) -> list[dict]:
        """Alerts, most recently changed first (GET /alerts: project, run_id, state, ...)."""
        return self.get("/alerts", **params)["alerts"]

    def alert(self, alert_id: int, max_events: int = 200) -> dict:
        """One alert with its events and their delivery log."""
        return self.get(f"/alerts/{int(alert_id)}", max_events=max_events)
