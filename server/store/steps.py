"""Ingest of step batches: one transaction, idempotent on (run, step)."""

from __future__ import annotations

import time

from sqlalchemy import Insert, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.models import HistogramRow, Run, Step, utcnow
from fadewatch.server.schemas import IngestResult, StepRecord
from fadewatch.server.store.runs import load_run

__all__ = ["ingest"]


def _insert(session: Session, table) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def ingest(
    session: Session, run_id: int, records: list[StepRecord], who: Principal
) -> IngestResult:
    """Store new steps of a run; steps already stored (or repeated in the batch) are left alone."""
    load_run(session, run_id, who, write=True)
    first_by_step: dict[int, StepRecord] = {}
    in_batch_duplicates: list[int] = []
    for record in records:
        if record.step in first_by_step:
            in_batch_duplicates.append(record.step)
        else:
            first_by_step[record.step] = record
    if not first_by_step:
        return IngestResult(stored=0, duplicates=len(records), duplicate_steps=in_batch_duplicates)

    now = time.time()
    # Sorted keys give every writer the same lock order, so concurrent batches cannot deadlock.
    ordered = [first_by_step[s] for s in sorted(first_by_step)]
    step_rows = [
        {
            "run_id": run_id,
            "step": r.step,
            "time": r.time if r.time is not None else now,
            "scalars": r.scalars,
            "nonfinite": r.nonfinite,
            "samples": [s.model_dump() for s in r.samples] if r.samples else None,
        }
        for r in ordered
    ]
    stmt = (
        _insert(session, Step)
        .on_conflict_do_nothing(index_elements=["run_id", "step"])
        .returning(Step.step)
    )
    stored_steps = set(session.scalars(stmt, step_rows).all())

    histogram_rows = [
        {
            "run_id": run_id,
            "name": name,
            "step": r.step,
            "data": h.model_dump(exclude_none=True),
        }
        for r in ordered
        if r.step in stored_steps
        for name, h in r.histograms.items()
    ]
    if histogram_rows:
        session.execute(_insert(session, HistogramRow), histogram_rows)

    if stored_steps:
        _advance_run(session, run_id, first_by_step, stored_steps)

    duplicates = sorted(set(first_by_step) - stored_steps) + in_batch_duplicates
    return IngestResult(
        stored=len(stored_steps), duplicates=len(duplicates), duplicate_steps=duplicates
    )


def _advance_run(
    session: Session, run_id: int, by_step: dict[int, StepRecord], stored: set[int]
) -> None:
    newest = by_step[max(stored)]
    # Counting is unconditional; the summary only moves forward, even if batches race.
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(step_count=Run.step_count + len(stored), updated_at=utcnow())
    )
    session.execute(
        update(Run)
        .where(Run.id == run_id, or_(Run.last_step.is_(None), Run.last_step < newest.step))
        .values(
            last_step=newest.step,
            last_time=newest.time if newest.time is not None else time.time(),
            summary=newest.scalars,
        )
    )
