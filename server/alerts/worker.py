"""The delivery worker: a daemon thread that drains the notification outbox.

At least once: a notification leaves the outbox only after a receiver answered 2xx (or it
was given up on), so a crash at any point means a resend with the same `webhook-id`.
Per channel, notifications go out in the order they were written; the head of a channel's
queue is claimed with a lease, so several server processes can share one database.
Retries back off exponentially up to a cap, and a 429's Retry-After is honoured.
The thread never dies: any error is logged and the loop goes on after a pause.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import event

from fadewatch import __version__
from fadewatch.server.alerts.engine import OUTBOX_FLAG
from fadewatch.server.alerts.ssrf import TargetRefused, resolve_target
from fadewatch.server.alerts.webhooks import signed_headers
from fadewatch.server.deps import Database
from fadewatch.server.settings import ServerSettings
from fadewatch.server.store import delivery as queue

__all__ = ["DeliveryWorker", "Outcome", "retry_after_seconds"]

log = logging.getLogger("fadewatch.server.alerts")
_RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class Outcome:
    outcome: str  # delivered | retry | failed
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _pinned(target, address: str) -> tuple[str, dict[str, str], dict]:
    """The URL with the checked address in place of the host, the Host header and TLS name."""
    ip = f"[{address}]" if ":" in address else address
    rest = target.url.split("://", 1)[1]
    path = rest[len(rest.split("/", 1)[0]):] if "/" in rest else ""
    path = path or "/"
    default = 443 if target.scheme == "https" else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    host_header = host if target.port == default else f"{host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return f"{target.scheme}://{ip}:{target.port}{path}", {"host": host_header}, extensions


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        settings: ServerSettings,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        resolver=None,
        concurrency: int = 4,
    ):
        self.db, self.settings, self.clock, self.resolver = database, settings, clock, resolver
        self._own_client = client is None
        self.client = client or httpx.Client(follow_redirects=False, trust_env=False)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fadewatch-send")
        self.owner = f"w{random.getrandbits(48):012x}"

    # --- life --------------------------------------------------------------------------

    def start(self) -> DeliveryWorker:
        event.listen(self.db.factory, "after_commit", self._after_commit)
        self._thread = threading.Thread(target=self._loop, name="fadewatch-delivery", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if event.contains(self.db.factory, "after_commit", self._after_commit):
            event.remove(self.db.factory, "after_commit", self._after_commit)
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_client:
            self.client.close()

    def wake(self) -> None:
        self._wake.set()

    def _after_commit(self, session) -> None:
        if session.info.pop(OUTBOX_FLAG, False):
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                handled, next_due = self.run_once()
            except Exception:  # the database may be down; try again after a pause
                log.exception("notification delivery pass failed")
                handled, next_due = 0, None
            if handled:
                continue
            pause = self.settings.alert_delivery_poll_s
            if next_due is not None:
                pause = min(pause, max(0.0, next_due - self.clock()))
            self._wake.wait(pause)

    # --- one pass ----------------------------------------------------------------------

    def run_once(self) -> tuple[int, float | None]:
        """Claim the due head of every channel's queue, send, record. Returns (handled, next due)."""
        now = self.clock()
        with self.db.write_transaction() as session:
            jobs, next_due = queue.claim(session, now, now + self.settings.alert_delivery_lease_s, self.owner)
        if not jobs:
            return 0, next_due
        if len(jobs) == 1:
            outcomes = [self.send(jobs[0])]
        else:
            outcomes = list(self._pool.map(self.send, jobs))
        done = self.clock()
        with self.db.write_transaction() as session:
            for job, out in zip(jobs, outcomes):
                queue.record(session, job, out, done, self._next_attempt(job, out, done), self.settings)
        return len(jobs), next_due

    def _next_attempt(self, job, out: Outcome, now: float) -> float:
        s = self.settings
        if out.retry_after is not None:
            return now + min(out.retry_after, s.alert_delivery_max_retry_after_s)
        backoff = min(s.alert_delivery_backoff_max_s, s.alert_delivery_backoff_base_s * 2 ** min(job.attempts, 30))
        return now + backoff * random.uniform(0.8, 1.0)

    def send(self, job) -> Outcome:
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            target, address = resolve_target(
                job.url,
                allow_loopback=self.settings.alert_allow_loopback_targets,
                allow_private=self.settings.alert_allow_private_targets,
                resolver=self.resolver,
            )
        except TargetRefused as exc:
            # DNS failures are often passing; a refused address is not.
            retry = str(exc).startswith("cannot resolve")
            return Outcome("retry" if retry else "failed", None, str(exc)[:500], took())
        url, headers, extensions = _pinned(target, address)
        body = job.body.encode()
        headers.update({"content-type": "application/json", "user-agent": f"fadewatch/{__version__}"})
        if job.channel_kind == "webhook":
            try:
                headers.update(signed_headers(job.secret or "", job.message_id, int(self.clock()), body))
            except ValueError as exc:
                return Outcome("failed", None, f"cannot sign: {exc}", took())
        try:
            r = self.client.post(url, content=body, headers=headers, extensions=extensions,
                                 timeout=self.settings.alert_delivery_timeout_s)
        except httpx.HTTPError as exc:
            return Outcome("retry", None, f"{type(exc).__name__}: {exc}"[:500], took())
        code = r.status_code
        if 200 <= code < 300:
            return Outcome("delivered", code, None, took())
        detail = f"HTTP {code}: {r.text[:200]}"
        if code in _RETRYABLE or code >= 500:
            wait = retry_after_seconds(r.headers.get("retry-after"), self.clock()) if code in (429, 503) else None
            return Outcome("retry", code, detail, took(), wait)
        return Outcome("failed", code, detail, took())
