"""A small client for the server's HTTP API: the dashboard's only way to data.

It reads runs, series, histograms, samples and alerts; the only writes are the alerting
settings managed from the alerts page (dashboard/alertapi.py).

    ApiError                 any failure to get an answer (status: the HTTP status, if any)
     ├── Unauthorized        401: a token is needed, or it is unknown or revoked
     ├── NotFoundError       404: unknown run (or one of another project)
     └── Unavailable         connection refused, timeout, 5xx
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "ReadClient",
    "ApiError",
    "Unauthorized",
    "NotFoundError",
    "Unavailable",
    "MAX_KEYS_PER_REQUEST",
    "MAX_POINTS_LIMIT",
]

MAX_KEYS_PER_REQUEST = 100
MAX_POINTS_LIMIT = 20_000


class ApiError(Exception):
    """The API did not answer as expected."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Unauthorized(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class Unavailable(ApiError):
    pass


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class ReadClient:
    """GETs against `/api/v1` of one server; `transport` is injectable for tests."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", headers=headers,
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ReadClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def request(self, method: str, path: str, json: Any = None, params: dict | None = None) -> Any:
        """One call; the decoded JSON answer (None for 204), or an ApiError saying why not."""
        try:
            r = self._http.request(method, path, json=json, params=_clean(params or {}))
        except httpx.HTTPError as exc:
            raise Unavailable(f"{self.base_url} did not answer: {exc}") from exc
        if r.status_code == 401:
            raise Unauthorized("this server needs an API token", 401)
        if r.status_code == 404:
            raise NotFoundError(_detail(r), 404)
        if r.status_code >= 500:
            raise Unavailable(f"{self.base_url} answered {r.status_code}: {_detail(r)}", r.status_code)
        if r.status_code >= 400:
            raise ApiError(_detail(r), r.status_code)
        return None if r.status_code == 204 or not r.content else r.json()

    # Runs
    def runs(self, project: str | None = None, status: str | None = None, limit: int = 500) -> list[dict]:
        return self.get("/runs", project=project, status=status, limit=limit)["runs"]

    def run(self, run_id: int) -> dict:
        return self.get(f"/runs/{int(run_id)}")

    def keys(self, run_id: int) -> list[str]:
        return self.get(f"/runs/{int(run_id)}/keys")

    # Series and histograms
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

    def samples(self, run_id: int, limit: int = 8, max_step: int | None = None) -> list[dict]:
        """Sampled completions of the newest steps at or before `max_step`, newest first."""
        return self.get(f"/runs/{int(run_id)}/samples", limit=limit, max_step=max_step)["samples"]

    def alerts(self, **params: Any) -> list[dict]:
        """Alerts, most recently changed first (GET /alerts: project, run_id, state, ...)."""
        return self.get("/alerts", **params)["alerts"]

    def alert(self, alert_id: int, max_events: int = 200) -> dict:
        """One alert with its events and their delivery log."""
        return self.get(f"/alerts/{int(alert_id)}", max_events=max_events)


def _detail(r: httpx.Response) -> str:
    """The API's own explanation: a string, or validation errors as "where: what" lines."""
    try:
        detail = r.json().get("detail")
    except Exception:
        detail = None
    if isinstance(detail, list):
        parts = []
        for e in detail[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") if isinstance(e, dict) else ""
            msg = e.get("msg", "") if isinstance(e, dict) else str(e)
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts) or r.reason_phrase
    return str(detail) if detail else f"{r.status_code} {r.reason_phrase}"
