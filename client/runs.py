"""The ``Run`` that ``fadewatch.init()`` returns (registry.py keeps track of the runs).

The training thread only validates, launches device work and enqueues; a worker thread
computes and spools each record, and a sender thread ships the spool (see sender.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fadewatch.delivery import Backoff, Clock
from fadewatch.errors import UsageError
from fadewatch.notices import Notices, logger
from fadewatch.records import DeferredScalars, config_to_json, on_accelerator
from fadewatch.run_args import check_display_name, check_step, describe_error, leaves, split_scalars
from fadewatch.counters import Counters
from fadewatch.settings import Settings
from fadewatch.spool import Spool
from fadewatch.stats_worker import BoundedQueue, Job, StatsWorker

if TYPE_CHECKING:
    from fadewatch.sender import Sender

__all__ = ["Run", "STATUSES"]

STATUSES = ("finished", "failed", "crashed")


class Run:
    """A run being logged; made by ``fadewatch.init()``."""

    def __init__(self, settings: Settings, project: str, name: str, config: Any = None, *,
                 stats_config: Any = None, rollouts: Any = None, queue_size: int = 1000, batch_size: int = 100,
                 batch_interval: float = 1.0, transport: Any = None, clock: Clock | None = None,
                 backoff: Backoff | None = None):
        self.project = check_display_name(project, "project")
        self.name = check_display_name(name, "name")
        if int(queue_size) < 1:
            raise UsageError(f"queue_size must be at least 1, got {queue_size}")
        if stats_config is not None:
            from fadewatch.stats import StatsConfig

            if not isinstance(stats_config, StatsConfig):
                raise UsageError(f"stats_config must be a fadewatch.stats.StatsConfig, got {type(stats_config).__name__}")
        self.config = config_to_json(config)
        self.settings = settings
        self.mode = settings.mode
        self._state = "running"
        self._result: bool | None = None
        self._last_step = -1
        self._seq = 0
        self._lock = threading.Lock()  # step order and the queue hand-off; never held for I/O
        self._counters = Counters()
        self._notices = Notices()
        self._stats_config = stats_config
        from fadewatch.rollouts import RolloutConfig, RunBudget

        if rollouts is not None and not isinstance(rollouts, RolloutConfig):
            raise UsageError(f"rollouts must be a fadewatch.RolloutConfig, got {type(rollouts).__name__}")
        self._rollouts = RunBudget(rollouts or RolloutConfig())  # the per-run cap of the inspector's rollouts
        self._head: Any = None
        self.on_finished: Callable[[Run], None] | None = None  # the registry forgets the run
        self._spool: Spool | None = None
        self._sender: Sender | None = None
        if self.mode == "disabled":
            return
        self._spool = Spool.create(settings.spool_dir, self.project, self.name, self.config)
        self._queue = BoundedQueue(int(queue_size))
        if self.mode == "online":
            # Here, not at the top: offline and disabled runs never load the HTTP stack.
            from fadewatch.api_client import ApiClient
            from fadewatch.sender import Sender

            api = ApiClient(settings.url, settings.token, transport=transport)
            self._sender = Sender(api, self._spool, self._counters, clock=clock, backoff=backoff,
                                  batch_size=batch_size, interval=batch_interval)
        self._worker = StatsWorker(self._queue, self._spool, self._counters,
                                   on_record=self._sender.notify if self._sender else None,
                                   rollout_budget=self._rollouts)
        self._worker.start()
        if self._sender:
            self._sender.start()

    # ---- read-only facts ---------------------------------------------------------------

    @property
    def id(self) -> int | None:
        """The server's id of the run; None until the server has answered (or offline)."""
        return self._sender.run_id if self._sender else None

    @property
    def spool_dir(self) -> Path | None:
        return self._spool.path if self._spool else None

    @property
    def finished(self) -> bool:
        return self._state == "finished"

    def __repr__(self) -> str:
        return f"<fadewatch.Run {self.project}/{self.name} mode={self.mode} id={self.id} {self._state}>"

    # ---- the training thread -----------------------------------------------------------

    def log(self, step: int, *, advantages: Any = None, rewards: Any = None, group_ids: Any = None,
            entropy: Any = None, mask: Any = None, completions: Any = None, logprobs: Any = None,
            prompts: Any = None, tokenizer: Any = None, reward_parts: Any = None, **scalars: Any) -> None:
        """Record one training step; returns at once (see docs/client.md).

        prompts, completions (texts, or token ids with a tokenizer or decode function) and
        reward_parts feed the rollout inspector (docs/client.md, "Rollouts").
        """
        if self.mode == "disabled":
            return
        if self._state != "running":
            raise UsageError(f"log() after finish() of run {self.project}/{self.name}")
        step = check_step(step)
        if step <= self._last_step:
            raise self._step_error(step)
        now = time.time()
        values, deferred = split_scalars(scalars)
        arrays = {"advantages": advantages, "rewards": rewards, "group_ids": group_ids, "entropy": entropy,
                  "mask": mask, "logprobs": logprobs, "completions": completions}
        measured = self._measure_head(step)
        inputs = reduced = None
        if measured or any(v is not None for v in (*arrays.values(), prompts, reward_parts)):
            from fadewatch import stats

            rollout_inputs = {"prompts": prompts, "tokenizer": tokenizer, "reward_parts": reward_parts}
            if completions is not None:
                from fadewatch.rollouts.inputs import RolloutPlan

                rollout_inputs["rollouts"] = RolloutPlan(self._rollouts.config, self._rollouts.allowance(), step)
            inputs = stats.prepare(**arrays, scalars=measured or None, config=self._config_of_stats(stats),
                                   **rollout_inputs)
            if any(on_accelerator(v) for v in leaves(arrays, measured)):
                try:  # kernel launches and an async copy only: the worker waits for the device, not us
                    reduced, inputs = stats.reduce(inputs).to_host_async(), None
                except UsageError:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. out of device memory: keep training
                    inputs = None
                    self._stats_failed(step, exc)
        job = Job(0, step, now, inputs, reduced, values, DeferredScalars(deferred) if deferred else None,
                  tuple(k for k, v in values.items() if v is None))
        with self._lock:
            if self._state != "running":
                raise UsageError(f"log() after finish() of run {self.project}/{self.name}")
            if step <= self._last_step:
                raise self._step_error(step)
            self._last_step = step
            queued = self._queue.put_nowait(job._replace(seq=self._seq + 1))
            if queued:
                self._seq += 1
        self._counters.add(logged=1, dropped=0 if queued else 1)
        if not queued:
            self._notices.warning(
                "queue-full", "fadewatch: the queue of %d steps is full, step %d dropped (%d so far); "
                "the statistics worker cannot keep up", self._queue.maxsize, step, self.health()["dropped"])

    def _measure_head(self, step: int) -> Any:
        if self._head is None:
            return None
        try:
            return self._head.maybe_measure(step)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not end the training
            self._head = None
            self._stats_failed(step, exc, "head geometry is switched off")
            return None

    def _stats_failed(self, step: int, exc: Exception, consequence: str = "sending its scalars only") -> None:
        self._counters.add(stats_errors=1)
        self._counters.error(f"step {step}: {type(exc).__name__}: {exc}")
        self._notices.error("stats-" + consequence, "fadewatch: statistics of step %d failed (%r); %s",
                            step, exc, consequence)

    def _step_error(self, step: int) -> UsageError:
        return UsageError(
            f"step {step} is not after the last logged step {self._last_step}: steps must increase; "
            "log everything of one step in a single call"
        )

    def _config_of_stats(self, stats: Any) -> Any:
        if self._stats_config is None:
            self._stats_config = stats.StatsConfig()
        return self._stats_config

    def watch_head(self, module: Any, every: int = 100) -> None:
        """Measure the output head's update (norm, rank-1 fraction) every ``every`` steps."""
        if self.mode == "disabled":
            return
        if self._state != "running":
            raise UsageError("watch_head() after finish()")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UsageError(f"every must be a positive int, got {every!r}")
        from fadewatch.stats import HeadWatcher

        self._head = HeadWatcher(module, every=every)

    # ---- waiting for delivery ----------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every step logged so far is spooled (fsync'd) and, online, stored by the server.

        True when all of it happened within ``timeout`` seconds.
        """
        if self.mode == "disabled":
            return True
        if self._state != "running":
            return bool(self._result)
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._seq
        spooled = self._worker.wait_done(target, deadline, time.monotonic)
        lines = self._spool.lines_written
        self._spool.sync()
        if not spooled:
            self._notices.warning("flush", "fadewatch: flush() timed out before every step was spooled")
            return False
        if self._sender is None:
            return True
        self._sender.request_flush(lines)
        return self._sender.wait_acked(lines, deadline)

    def finish(self, timeout: float = 30.0, status: str = "finished",
               error: str | BaseException | None = None) -> bool:
        """Flush, set the run's final status on the server, and stop the threads.

        ``error``: what ended a failed or crashed run (an exception, or text), shown with it.
        True when every logged step was stored and the status set within ``timeout`` (none
        dropped or refused); what was not delivered stays in the spool for ``fadewatch sync``.
        Calling it again returns the first answer.
        """
        if status not in STATUSES:
            raise UsageError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        error = describe_error(error) if status != "finished" else None
        with self._lock:
            if self._state != "running":
                return bool(self._result)
            if self._on_own_thread():
                # Garbage collection can run a __del__ that finishes the run on the run's own worker
                # or sender thread, which cannot wait for itself: finish from a thread of its own.
                threading.Thread(target=self.finish, args=(timeout, status, error), daemon=True,
                                 name=f"finish {self.project}/{self.name}").start()
                return False
            self._state = "finishing"
            target = self._seq
        try:
            self._result = self._finish(target, timeout, status, error)
        finally:
            self._state = "finished"
            if self.on_finished is not None:
                self.on_finished(self)
        return self._result

    def _on_own_thread(self) -> bool:
        current = threading.current_thread()
        return any(getattr(part, "_thread", None) is current
                   for part in (getattr(self, "_worker", None), self._sender) if part is not None)

    def _finish(self, target: int, timeout: float, status: str, error: str | None) -> bool:
        if self.mode == "disabled":
            return True
        deadline = time.monotonic() + timeout
        self._worker.stop()
        spooled = self._worker.wait_done(target, deadline, time.monotonic)
        spool = self._spool
        spool.update_meta(status=status, error=error, finished=time.time())
        spool.sync()
        if self._sender is None:
            if spooled:
                spool.close()
            logger.info("fadewatch: offline run %s/%s saved in %s; upload it with `fadewatch sync`",
                        self.project, self.name, spool.path)
            return spooled
        sender = self._sender
        sender.stop(status)
        stopped = sender.join(deadline)
        if not stopped:
            sender.abandon()
        delivered = spooled and stopped and sender.delivered_everything and bool(spool.meta.get("status_sent"))
        lost = self._counters.snapshot()
        done = delivered and not lost["rejected"] and not lost["dropped"]
        if lost["dropped"]:
            logger.warning("fadewatch: run %s/%s dropped %d of %d logged step(s) (a full queue, failed "
                           "statistics, or a spool that could not be written: see the warnings above)",
                           self.project, self.name, lost["dropped"], lost["logged"])
        if delivered and not spool.rejected_count:
            spool.remove()
        else:
            if spooled:
                spool.close()
            left = spool.lines_written - sender.acked_count
            if left or not delivered:
                upload = "" if spool.in_memory else " and `fadewatch sync` uploads them"
                logger.warning("fadewatch: run %s/%s finished with %d record(s) not delivered; they are "
                               "kept in %s%s", self.project, self.name, left, spool.where, upload)
        return done

    def health(self) -> dict[str, Any]:
        """Counters of what happened to the logged steps (see docs/client.md)."""
        out = self._counters.snapshot()
        acked = self._sender.acked_count if self._sender else 0
        out["pending"] = (self._spool.lines_written - acked) if self._spool else 0
        out["queued"] = len(self._queue) if self._spool else 0
        if out["last_error"] is None and self._spool is not None:
            out["last_error"] = self._spool.last_error
        out.update(mode=self.mode, run_id=self.id, halted=self._sender.halted if self._sender else None)
        return out
