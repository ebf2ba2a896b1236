"""The statistics worker: a background thread that turns queued steps into records and appends them to the spool.

``log()`` hands over a ``Job``: the prepared inputs (CPU) or the reductions already
launched on the device (accelerator), plus the extra scalars. The worker finishes the
statistics, encodes the record and appends it to the spool, then tells the sender.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from fadewatch.notices import Notices
from fadewatch.records import DeferredScalars, encode
from fadewatch.counters import Counters
from fadewatch.spool import Spool

__all__ = ["BoundedQueue", "Job", "StatsWorker"]

STOP = object()


class Job(NamedTuple):
    seq: int
    step: int
    time: float
    inputs: Any = None  # from stats.prepare() (CPU data): reduced here
    reduced: Any = None  # stats.reduce(...).to_host_async() (device data): only finalised here
    scalars: dict[str, float | None] | None = None
    deferred: DeferredScalars | None = None
    nonfinite: tuple[str, ...] = ()


class BoundedQueue:
    """A FIFO whose ``put_nowait`` never blocks: it refuses when full."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: deque = deque()
        self._cv = threading.Condition()

    def put_nowait(self, item: Any) -> bool:
        with self._cv:
            if len(self._items) >= self.maxsize:
                return False
            self._items.append(item)
            self._cv.notify()
            return True

    def put_control(self, item: Any) -> None:
        """Enqueue past the bound (the stop marker must always get in)."""
        with self._cv:
            self._items.append(item)
            self._cv.notify()

    def get(self) -> Any:
        with self._cv:
            while not self._items:
                self._cv.wait()
            return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class StatsWorker:
    """One daemon thread per run: jobs in, spooled records out."""

    def __init__(self, queue: BoundedQueue, spool: Spool, counters: Counters, *,
                 on_record: Callable[[], None] | None = None, rollout_budget: Any = None):
        self.queue, self.spool, self.counters = queue, spool, counters
        self.rollout_budget = rollout_budget  # fadewatch.rollouts.RunBudget: the per-run cap
        self.on_record = on_record or (lambda: None)
        self.notices = Notices()
        self.done_seq = 0
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._main, name="fadewatch-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.queue.put_control(STOP)

    def wait_done(self, seq: int, deadline: float, clock: Callable[[], float]) -> bool:
        """Wait until every job up to ``seq`` is in the spool (or was counted as lost)."""
        with self._progress:
            while self.done_seq < seq:
                remaining = deadline - clock()
                if remaining <= 0 or not self._thread.is_alive():
                    return self.done_seq >= seq
                self._progress.wait(min(remaining, 0.5))
            return True

    def _main(self) -> None:
        while True:
            job = self.queue.get()
            if job is STOP:
                return
            try:
                self._process(job)
            except Exception as exc:  # noqa: BLE001 - never let one step kill the worker
                self.counters.add(stats_errors=1, dropped=1)
                self.counters.error(f"step {job.step}: {type(exc).__name__}: {exc}")
                self.notices.error("worker", "fadewatch: could not record step %s: %r", job.step, exc)
            finally:
                with self._progress:
                    self.done_seq = job.seq
                    self._progress.notify_all()

    def _process(self, job: Job) -> None:
        line = encode(self._record(job))
        if self.spool.append(line):
            self.counters.add(spooled=1)
            self.on_record()
        else:
            self.counters.add(dropped=1)
            self.counters.error("the in-memory spool is full (the disk refused writes)")
            self.notices.warning("memory-full", "fadewatch: the spool folder cannot be written and the records "
                                 "kept in memory reached their limit: step %s dropped (%d dropped so far)",
                                 job.step, self.counters.snapshot()["dropped"])

    def _admit(self, groups: list[dict]) -> list[dict]:
        """A step's rollouts if the run's cap still has room for them, else none."""
        if not groups:
            return []
        from fadewatch.rollouts.fill import rollout_bytes

        size = rollout_bytes(groups)
        if self.rollout_budget is not None and not self.rollout_budget.admit(size):
            self.counters.add(rollouts_over_cap=1)
            return []
        self.counters.add(rollout_bytes=size)
        return groups

    def _record(self, job: Job) -> dict[str, Any]:
        record: dict[str, Any] = {"step": job.step, "time": job.time, "scalars": {},
                                  "histograms": {}, "rollouts": [], "nonfinite": []}
        nonfinite = set(job.nonfinite)
        if job.inputs is not None or job.reduced is not None:
            try:
                from fadewatch import stats

                reduced = job.reduced if job.reduced is not None else stats.reduce(job.inputs)
                result = stats.finalize(reduced)
                record["scalars"].update(result.scalars)
                record["histograms"] = dict(result.histograms)
                record["rollouts"] = self._admit(result.rollouts)
                nonfinite.update(result.nonfinite)
            except Exception as exc:  # noqa: BLE001 - keep the step's scalars at least
                self.counters.add(stats_errors=1)
                self.counters.error(f"step {job.step}: statistics failed: {type(exc).__name__}: {exc}")
                self.notices.error("stats", "fadewatch: statistics of step %s failed (%r); "
                                   "sending its scalars only", job.step, exc)
        ours: dict[str, float | None] = dict(job.scalars or {})
        if job.deferred is not None:
            try:
                ours.update(job.deferred.resolve())
            except Exception as exc:  # noqa: BLE001 - a device error: keep the rest of the step
                self.counters.add(stats_errors=1)
                self.counters.error(f"step {job.step}: reading device scalars failed: {exc}")
        nonfinite.update(name for name, v in ours.items() if v is None)
        record["scalars"].update(ours)  # the caller's own names win over computed ones
        record["nonfinite"] = sorted(nonfinite)
        return record
