"""Storing step batches: rows only, idempotent on (run, step); the ingest service owns the transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from sqlalchemy import Insert, or_, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.models import HistogramRow, Run, Step, utcnow
from fadewatch.server.schemas import IngestResult, StepRecord
from fadewatch.server.store import blocks
from fadewatch.server.store.rollouts import add_rollouts
from fadewatch.server.store.runs import load_run

__all__ = ["StoredBatch", "store_batch"]


@dataclass
class StoredBatch:
    """What a batch stored: the API's answer, and the newly stored records in step order."""

    result: IngestResult
    records: list[StepRecord]


def _insert(session: Session, table) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def store_batch(
    session: Session, run_id: int, records: list[StepRecord], who: Principal
) -> StoredBatch:
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
        return StoredBatch(IngestResult(stored=0, duplicates=len(records), duplicate_steps=in_batch_duplicates), [])

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
        }
        for r in ordered
    ]
    if session.get_bind().dialect.name == "postgresql":
        stored_steps = _insert_steps_pg(session, run_id, step_rows)
    else:
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
    if histogram_rows and session.get_bind().dialect.name == "postgresql":
        _insert_histograms_pg(session, run_id, histogram_rows)
    elif histogram_rows:
        session.execute(_insert(session, HistogramRow), histogram_rows)

    if stored_steps:
        _advance_run(session, run_id, first_by_step, stored_steps)
        # Under the run's row lock taken just above, so blocks of one run merge one batch at a time.
        by_step: dict[int, dict] = {}
        for row in histogram_rows:
            by_step.setdefault(row["step"], {})[row["name"]] = row["data"]
        blocks.add_steps(session, run_id, [(r.step, r.scalars, by_step.get(r.step, {}))
                                           for r in ordered if r.step in stored_steps])
        add_rollouts(session, run_id, [r for r in ordered if r.step in stored_steps and (r.rollouts or r.samples)])

    duplicates = sorted(set(first_by_step) - stored_steps) + in_batch_duplicates
    result = IngestResult(stored=len(stored_steps), duplicates=len(duplicates), duplicate_steps=duplicates)
    return StoredBatch(result, [r for r in ordered if r.step in stored_steps])


# On PostgreSQL a batch is one statement over one JSON document: the statement text never
# changes (prepared once), and the rows cross the wire as a single parameter that the
# server unpacks, instead of hundreds of escaped values.
_PG_INSERT_STEPS = text(
    """
    INSERT INTO steps (run_id, step, time, scalars, nonfinite)
    SELECT :run_id, r.step, r.time, r.scalars, r.nonfinite
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(step bigint, time float8, scalars jsonb, nonfinite jsonb)
    ORDER BY r.step
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING step
    """
)
_PG_INSERT_HISTOGRAMS = text(
    """
    INSERT INTO histograms (run_id, name, step, data)
    SELECT :run_id, h.name, h.step, h.data
    FROM json_to_recordset(CAST(:rows AS json)) AS h(name text, step bigint, data json)
    """
)


def _rows_json(rows: list[dict]) -> str:
    return orjson.dumps(rows).decode()


def _insert_steps_pg(session: Session, run_id: int, rows: list[dict]) -> set[int]:
    params = {"run_id": run_id, "rows": _rows_json(rows)}
    return set(session.scalars(_PG_INSERT_STEPS, params).all())


def _insert_histograms_pg(session: Session, run_id: int, rows: list[dict]) -> None:
    session.execute(_PG_INSERT_HISTOGRAMS, {"run_id": run_id, "rows": _rows_json(rows)})


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
