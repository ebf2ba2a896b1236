"""The delivery worker: a daemon thread that drains the notification outbox.

At least once: a notification leaves the outbox only after a receiver answered 2xx (or it
was given up on), so a crash at any point means a resend with the same `webhook-id`.
Per channel, notifications go out in the order they were written; the head of a channel's
queue is claimed with a lease, so several server processes can share one database.
Retries back off exponentially up to a cap, and a 429's Retry-After is honoured.
The worker wakes as soon as a transaction that queued notifications commits, and polls
besides (for other processes' notifications and for retries that fall due).
The thread never dies: any error is logged and the loop goes on after a pause.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import event

from fadewatch.server.alerts.delivery.messages import OUTBOX_FLAG
from fadewatch.server.alerts.delivery.sender import Outcome, send
from fadewatch.server.alerts.delivery.ssrf import Resolver
from fadewatch.server.db import Database
from fadewatch.server.http.metrics import ServerMetrics
from fadewatch.server.settings import ServerSettings
from fadewatch.server.store import delivery as queue

__all__ = ["DeliveryWorker"]

log = logging.getLogger("fadewatch.server.alerts")


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        settings: ServerSettings,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        concurrency: int = 4,
        metrics: ServerMetrics | None = None,
    ):
        self.db, self.settings, self.clock, self.resolver = database, settings, clock, resolver
        self.metrics = metrics
        self._own_client = client is None
        self.client = client or httpx.Client(follow_redirects=False, trust_env=False)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fadewatch-send")

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

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _after_commit(self, session) -> None:
        # SQLAlchemy calls this when a savepoint is released too, and alert evaluation runs in
        # one: woken then, the claim would run before the outer commit makes the messages
        # visible, and they would wait for the next poll. Only the outermost commit counts.
        if session.in_nested_transaction():
            return
        if session.info.pop(OUTBOX_FLAG, False):
            self._wake.set()

    def _loop(self) -> None:
        errors = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                handled, next_due = self.run_once()
                errors = 0
            except Exception:  # the database may be down: try again, less often while it lasts
                errors += 1
                log.exception("notification delivery pass failed (%d in a row)", errors)
                self._stop.wait(min(self.settings.alert_delivery_poll_s * 2 ** min(errors, 10), 60.0))
                continue
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
            # No more than the pool sends at once, so every claimed job is sent within its lease.
            jobs, next_due = queue.claim(session, now, now + self.settings.alert_delivery_lease_s,
                                         limit=self._concurrency)
        if not jobs:
            return 0, next_due
        if len(jobs) == 1:
            outcomes = [self.send(jobs[0])]
        else:
            outcomes = list(self._pool.map(self.send, jobs))
        done = self.clock()
        with self.db.write_transaction() as session:
            for job, out in zip(jobs, outcomes):
                if self.metrics is not None:
                    self.metrics.alert_deliveries.labels(job.channel_kind, out.outcome).inc()
                status = queue.record(session, job, out, done, self._next_attempt(job, out, done),
                                      self.settings.alert_delivery_max_age_s)
                if status == "failed":
                    log.warning("notification %s to channel %s given up: %s", job.message_id,
                                job.channel_id, out.error)
        return len(jobs), next_due

    def _next_attempt(self, job: queue.Job, out: Outcome, now: float) -> float:
        s = self.settings
        if out.retry_after is not None:
            return now + min(out.retry_after, s.alert_delivery_max_retry_after_s)
        backoff = min(s.alert_delivery_backoff_max_s, s.alert_delivery_backoff_base_s * 2 ** min(job.attempts, 30))
        # Jitter keeps many servers retrying one receiver from arriving in lockstep.
        return now + backoff * random.uniform(0.8, 1.0)

    def send(self, job: queue.Job) -> Outcome:
        return send(self.client, self.settings, kind=job.channel_kind, url=job.url, secret=job.secret,
                    message_id=job.message_id, body=job.body, clock=self.clock, resolver=self.resolver)
