"""The sender: a daemon thread that ships a run's spool to the server.

It follows the spool like a log shipper: batches every ``interval`` seconds or
``batch_size`` records, POSTs them (gzip JSON), advances the ack marker on success and
backs off on failure. Its condition variable guards counters only; no lock is held
during a request, and ``log()`` never takes it.
"""

from __future__ import annotations

import threading
import time

from fadewatch.api_client import ApiClient, Reply
from fadewatch.counters import Counters
from fadewatch.delivery import Backoff, Clock, deliver
from fadewatch.notices import Notices, logger
from fadewatch.spool import Entry, Spool

__all__ = ["Sender"]


class Sender:
    """Ships one spool; ``start()``, ``notify()`` per new record, ``stop()`` at finish."""

    def __init__(self, api: ApiClient, spool: Spool, counters: Counters, *,
                 clock: Clock | None = None, backoff: Backoff | None = None,
                 batch_size: int = 100, interval: float = 1.0, max_batch_bytes: int = 4 << 20):
        self.api, self.spool, self.counters = api, spool, counters
        self.clock = clock or Clock()
        self.backoff = backoff or Backoff()
        self.batch_size, self.interval, self.max_batch_bytes = batch_size, interval, max_batch_bytes
        self.notices = Notices()
        self.run_id: int | None = None
        self.acked_count = 0  # records of this spool acknowledged (or put aside), in order
        self.halted: str | None = None  # why delivery stopped for good (bad token, ...)
        self._cv = threading.Condition()
        self._read_count = 0
        self._last_batch = self.clock.monotonic() - interval
        self._flush_target = 0
        self._stopping = False
        self._status: str | None = None
        self._retry_now = False
        self._abandon = False
        self._failing = False  # set by a failed attempt: what waited meanwhile counts as replayed
        self._replay_mark = 0
        self._thread = threading.Thread(target=self._main, name="fadewatch-sender", daemon=True)

    # ---- called from other threads (brief lock, no I/O) --------------------------------

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New records are in the spool."""
        with self._cv:
            self._cv.notify_all()

    def request_flush(self, target: int) -> None:
        """Send now, without the batching interval or the current backoff, up to ``target``."""
        with self._cv:
            self._flush_target = max(self._flush_target, target)
            self._retry_now = True
            self._cv.notify_all()

    def stop(self, status: str | None) -> None:
        """Deliver what is left, PATCH ``status``, then exit; retries at once if backing off."""
        with self._cv:
            self._stopping, self._status, self._retry_now = True, status, True
            self._cv.notify_all()

    def abandon(self) -> None:
        """Exit at the next chance; what is undelivered stays in the spool."""
        with self._cv:
            self._abandon = True
            self._cv.notify_all()

    def wait_acked(self, target: int, deadline: float) -> bool:
        """Wait until ``target`` records are acknowledged; False at the deadline (time.monotonic)
        or when delivery stopped for good."""
        with self._cv:
            while self.acked_count < target:
                if self.halted or not self._thread.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(min(remaining, 0.5))
            return True

    def join(self, deadline: float) -> bool:
        """Wait for the thread to end, until ``deadline`` (time.monotonic)."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    # ---- the thread --------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._loop()
        finally:
            self.api.close()
            with self._cv:
                self._cv.notify_all()

    def _loop(self) -> None:
        batch: list[Entry] = []
        while True:
            try:
                if self._abandon:
                    return
                if self.halted:
                    self._idle_until_stopped()
                    return
                if self.run_id is None:
                    if not self._create_run():
                        continue
                if not batch:
                    batch = self._next_batch()
                    if batch is None:
                        self._send_status()
                        return
                    continue
                batch = self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - this thread must outlive any bug
                self.counters.error(f"sender: {type(exc).__name__}: {exc}")
                self.notices.error("sender-bug", "fadewatch: sender error: %r", exc)
                self._pause(self.backoff.next_delay())
            finally:
                with self._cv:
                    self._cv.notify_all()  # wake flush()/finish() waiters

    def _next_batch(self) -> list[Entry] | None:
        """Wait for a batch worth sending; None once stopping and nothing is left."""
        with self._cv:
            while True:
                if self._abandon:
                    return []
                available = self.spool.lines_written - self._read_count
                now = self.clock.monotonic()
                hurry = self._stopping or self._flush_target > self.acked_count
                if available >= self.batch_size or (available and (hurry or now - self._last_batch >= self.interval)):
                    break
                if self._stopping and not available:
                    return None
                timeout = self._last_batch + self.interval - now if available else 5.0
                self.clock.wait(self._cv, timeout)
        self._last_batch = self.clock.monotonic()
        entries = self.spool.read(self.batch_size, self.max_batch_bytes)
        self._read_count += len(entries)
        if not entries:  # written but unreadable (a disk error): do not spin
            self.counters.error(self.spool.last_error or "spool records could not be read")
            self._pause(self.backoff.next_delay())
        return entries

    def _deliver(self, batch: list[Entry]) -> list[Entry]:
        outcome = deliver(self.api, self.run_id, batch, self.spool)
        if outcome.done and self._failing:
            self._failing = False
            self._replay_mark = self.spool.lines_written
            self.notices.forget("unreachable")
            logger.info("fadewatch: delivering to %s again", self.api.url)
        done = batch[:outcome.done]
        if done:
            replayed = sum(1 for e in done if e.index < self._replay_mark)
            self.counters.add(sent=outcome.stored + outcome.duplicates, stored=outcome.stored,
                              duplicates=outcome.duplicates, rejected=outcome.rejected,
                              failed_batches=outcome.rejected, replayed=replayed)
            with self._cv:
                self.acked_count = done[-1].index + 1
        if outcome.rejection is not None:
            self.counters.error(outcome.rejection.error)
            self.notices.error("rejected", "fadewatch: the server refused records as invalid; "
                               "kept aside in %s: %s", self.spool.path, outcome.rejection.error)
        if outcome.stop is not None:
            self._failed(outcome.stop)
        else:
            self.backoff.reset()
        return batch[outcome.done:]

    def _failed(self, reply: Reply) -> None:
        """React to an answer that stopped delivery."""
        self.counters.add(failed_batches=1)
        self.counters.error(reply.error)
        kind = reply.kind
        if kind == "not_found":
            logger.info("fadewatch: run %s unknown to the server; creating it again", self.run_id)
            self.run_id = None
            return
        if kind == "auth":
            self._halt(reply)
            return
        self._failing = True
        self.notices.warning("unreachable", "fadewatch: cannot deliver to %s (%s); records are "
                             "kept in %s and will be sent when it answers",
                             self.api.url, reply.error, self.spool.where)
        self._pause(self.backoff.next_delay(reply.server_delay))

    def _halt(self, reply: Reply) -> None:
        self.halted = reply.error or "refused"
        logger.error("fadewatch: the server at %s refused this client (HTTP %s): check "
                     "FADEWATCH_TOKEN. Records stay in %s; upload them later with `fadewatch sync`.",
                     self.api.url, reply.status, self.spool.path)

    def _pause(self, delay: float) -> None:
        """Back off for ``delay`` seconds; finish() and abandon() cut it short."""
        with self._cv:
            deadline = self.clock.monotonic() + delay
            while not (self._abandon or self._retry_now):
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                self.clock.wait(self._cv, remaining)
            self._retry_now = False

    def _create_run(self) -> bool:
        meta = self.spool.meta
        reply = self.api.create_run(meta["project"], meta["name"], meta.get("config"))
        if reply.kind == "ok" and isinstance(reply.body, dict) and "id" in reply.body:
            self.run_id = int(reply.body["id"])
            self.spool.update_meta(run_id=self.run_id)
            self.backoff.reset()
            return True
        if reply.kind == "ok":
            reply = Reply(reply.status, reply.body, error="POST /runs: answer without an id")
        if reply.kind in ("auth", "rejected", "too_large"):
            self.counters.error(reply.error)
            self._halt(reply) if reply.kind == "auth" else self._give_up(reply)
            return False
        self._failed(reply)
        return False

    def _give_up(self, reply: Reply) -> None:
        self.halted = reply.error
        logger.error("fadewatch: the server refused to create the run: %s. Records stay in %s.",
                     reply.error, self.spool.path)

    def _send_status(self) -> None:
        """PATCH the final status, retrying until it lands or finish() gives up."""
        status = self._status
        while status and not self._abandon and not self.halted:
            if self.run_id is None and not self._create_run():
                continue
            reply = self.api.patch_run(self.run_id, status, self.spool.meta.get("error"))
            if reply.kind == "ok":
                self.spool.update_meta(status_sent=True)
                return
            if reply.kind == "not_found":
                self.run_id = None
                continue
            if reply.kind in ("auth", "rejected"):
                self.counters.error(reply.error)
                logger.error("fadewatch: could not set the run status: %s", reply.error)
                return
            self._failed(reply)

    def _idle_until_stopped(self) -> None:
        with self._cv:
            while not (self._abandon or self._stopping):
                self.clock.wait(self._cv, 5.0)

    @property
    def delivered_everything(self) -> bool:
        return not self.halted and self.acked_count >= self.spool.lines_written
