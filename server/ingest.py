"""The ingest service: one transaction per batch, owned here.

    store the new steps (store/steps.py: rows only)
      └── SAVEPOINT: evaluate the alert rules on them (alerts/evaluation/engine.py)

The run's row is locked by the step insert (its counters are updated), so batches of one
run are stored and evaluated one at a time, in step order. Alert evaluation runs inside a
savepoint: whatever fails there, a detector's Python or an SQL statement (which on
PostgreSQL would otherwise abort the whole transaction), rolls back to the savepoint alone.
The steps are committed, the client gets its answer and moves on, and the failure is
counted in /metrics and logged once per run.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session

from fadewatch.server.alerts.evaluation.engine import AlertContext, evaluate
from fadewatch.server.auth import Principal
from fadewatch.server.db import Database
from fadewatch.server.http.metrics import ServerMetrics
from fadewatch.server.schemas import IngestResult, StepRecord
from fadewatch.server.store.steps import store_batch

__all__ = ["IngestService"]

log = logging.getLogger("fadewatch.server.ingest")


class IngestService:
    """Stores batches of step records and runs the alert rules on what was new."""

    MAX_REMEMBERED_RUNS = 10_000

    def __init__(self, database: Database, context: AlertContext, metrics: ServerMetrics):
        self.db, self.context, self.metrics = database, context, metrics
        self._lock = threading.Lock()
        self._failed_runs: set[int] = set()  # runs whose alert failure was logged already

    def ingest(self, run_id: int, records: list[StepRecord], who: Principal) -> IngestResult:
        with self.db.write_transaction() as session:
            stored = store_batch(session, run_id, records, who)
            if stored.records:
                self._evaluate_alerts(session, run_id, stored.records)
        self.metrics.batches.inc()
        self.metrics.steps_stored.inc(stored.result.stored)
        self.metrics.steps_duplicate.inc(stored.result.duplicates)
        return stored.result

    def _evaluate_alerts(self, session: Session, run_id: int, records: list[StepRecord]) -> None:
        try:
            with session.begin_nested():
                evaluate(session, self.context, run_id, records)
        except Exception:  # noqa: BLE001 - alerting must never cost a stored step
            self.metrics.alert_evaluation_failures.inc()
            with self._lock:
                first = run_id not in self._failed_runs
                if first:
                    if len(self._failed_runs) >= self.MAX_REMEMBERED_RUNS:
                        self._failed_runs.clear()
                    self._failed_runs.add(run_id)
            if first:
                log.exception("alert evaluation failed for run %s: its steps are stored, its alerts skip "
                              "this batch (logged once per run; fadewatch_alert_evaluation_failures_total counts)",
                              run_id)
