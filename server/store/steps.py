"""Storing step batches: rows only, idempotent on (run, step); the ingest service owns the transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, case, or_, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server import packed
from fadewatch.server.models import HistogramRow, Run, Step, utcnow
from fadewatch.server.schemas import IngestResult, StepRecord
from fadewatch.server.store import blocks
from fadewatch.server.store.layouts import Layouts, array_literal, blob_params
from fadewatch.server.store.rollouts import add_rollouts
from fadewatch.server.store.runs import load_run

__all__ = ["StoredBatch", "store_batch"]


@dataclass
class StoredBatch:
    """What a batch stored: the API's answer, the newly stored records in step order, and the
    run, locked (held here, it stays in the session's identity map, which holds objects weakly:
    the alert rules' own read of it then costs no query)."""

    result: IngestResult
    records: list[StepRecord]
    run: Run


def store_batch(
    session: Session, run_id: int, records: list[StepRecord], who: Principal
) -> StoredBatch:
    """Store new steps of a run; steps already stored (or repeated in the batch) are left alone."""
    # Batches of one run are stored one at a time, the run's row locked before anything is
    # written: one batch's new layouts are then never waited on by another that holds the
    # run (its blocks may need a layout that the other's steps just made).
    run = load_run(session, run_id, who, write=True, lock=True)
    first_by_step: dict[int, StepRecord] = {}
    in_batch_duplicates: list[int] = []
    for record in records:
        if record.step in first_by_step:
            in_batch_duplicates.append(record.step)
        else:
            first_by_step[record.step] = record
    if not first_by_step:
        return StoredBatch(IngestResult(stored=0, duplicates=len(records), duplicate_steps=in_batch_duplicates), [],
                           run)

    now = time.time()
    # Sorted keys give every writer the same lock order, so concurrent batches cannot deadlock.
    ordered = [first_by_step[s] for s in sorted(first_by_step)]
    layouts = Layouts(session, run_id)
    hists = {r.step: {name: _histogram_data(h) for name, h in r.histograms.items()} for r in ordered}
    # Records grouped by layout: each group is packed as one array, and names its layout once.
    scalar_groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(ordered):
        scalar_groups.setdefault(tuple(r.scalars), []).append(i)
    hist_groups: dict[tuple, list[tuple[int, str, dict]]] = {}
    for step, by_name in hists.items():
        for name, data in by_name.items():
            hist_groups.setdefault(packed.histogram_layout_key(data), []).append((step, name, data))
    hist_docs = [packed.histogram_layout(members[0][2]) for members in hist_groups.values()]
    ids = layouts.ids([list(keys) for keys in scalar_groups] + hist_docs)

    steps = [r.step for r in ordered]
    times = [r.time if r.time is not None else now for r in ordered]
    layout_ids: list[int] = [0] * len(ordered)
    values: list[bytes] = [b""] * len(ordered)
    for layout_id, members in zip(ids, scalar_groups.values()):
        rows = packed.pack_scalar_rows([list(ordered[i].scalars.values()) for i in members])
        for i, row in zip(members, rows):
            layout_ids[i], values[i] = layout_id, row
    if session.get_bind().dialect.name == "postgresql":
        # Names of non-finite scalars by row number (1-based): most batches have none.
        nonfinite = {str(i): r.nonfinite for i, r in enumerate(ordered, start=1) if r.nonfinite is not None}
        stored_steps = set(session.scalars(_PG_INSERT_STEPS, {
            "run_id": run_id, "steps": array_literal(steps), "times": array_literal(times),
            "layouts": array_literal(layout_ids), **blob_params(values),
            "nonfinite": orjson.dumps(nonfinite).decode()}).all())
    else:
        stmt = (
            sqlite.insert(Step)
            .on_conflict_do_nothing(index_elements=["run_id", "step"])
            .returning(Step.step)
        )
        rows = [{"run_id": run_id, "step": s, "time": t, "layout": lay, "packed": v, "nonfinite": r.nonfinite}
                for s, t, lay, v, r in zip(steps, times, layout_ids, values, ordered)]
        stored_steps = set(session.scalars(stmt, rows).all())

    histogram_rows = []
    for layout_id, doc, members in zip(ids[len(scalar_groups):], hist_docs, hist_groups.values()):
        members = [m for m in members if m[0] in stored_steps]
        if members:
            rows = packed.pack_histograms([m[2] for m in members], doc)
            histogram_rows += [(name, step, layout_id, row) for (step, name, _), row in zip(members, rows)]
    if histogram_rows and session.get_bind().dialect.name == "postgresql":
        names, hsteps, hlayouts, hpacked = (list(c) for c in zip(*histogram_rows))
        session.execute(_PG_INSERT_HISTOGRAMS, {
            "run_id": run_id, "names": array_literal(names), "steps": array_literal(hsteps),
            "layouts": array_literal(hlayouts), **blob_params(hpacked)})
    elif histogram_rows:
        session.execute(sqlite.insert(HistogramRow), [
            {"run_id": run_id, "name": n, "step": s, "layout": lay, "packed": v} for n, s, lay, v in histogram_rows])

    if stored_steps:
        _advance_run(session, run_id, first_by_step, stored_steps)
        # Under the run's row lock, so blocks of one run merge one batch at a time.
        blocks.add_steps(session, run_id, [(r.step, r.scalars, hists[r.step])
                                           for r in ordered if r.step in stored_steps], layouts)
        add_rollouts(session, run_id, [r for r in ordered if r.step in stored_steps and (r.rollouts or r.samples)])

    duplicates = sorted(set(first_by_step) - stored_steps) + in_batch_duplicates
    result = IngestResult(stored=len(stored_steps), duplicates=len(duplicates), duplicate_steps=duplicates)
    return StoredBatch(result, [r for r in ordered if r.step in stored_steps], run)


def _histogram_data(histogram) -> dict:
    """A histogram as stored: the record's fields that are not null.

    Read off the validated model's fields (its __dict__) rather than model_dump() or its
    iterator: they are plain lists, numbers and a dict, so nothing needs converting, and
    dumping (which copies every count) cost about a tenth of a batch's CPU."""
    fields = histogram if isinstance(histogram, dict) else histogram.__dict__
    return {k: v for k, v in fields.items() if v is not None}


# On PostgreSQL a batch is one statement per table over arrays: the statement text never
# changes (prepared once), the packed rows cross the wire as one binary parameter cut into
# rows by the server (an array of bytea would be sent as escaped text), and the other
# columns as array literals.
_PG_INSERT_STEPS = text(
    """
    INSERT INTO steps (run_id, step, time, layout, packed, nonfinite)
    SELECT :run_id, r.step, r.time, r.layout, substring(CAST(:blob AS bytea) FROM r.start FOR r.size),
           CAST(:nonfinite AS jsonb) -> CAST(r.row AS text)
    FROM unnest(CAST(:steps AS bigint[]), CAST(:times AS float8[]), CAST(:layouts AS int[]),
                CAST(:starts AS int[]), CAST(:sizes AS int[])) WITH ORDINALITY
         AS r(step, time, layout, start, size, row)
    ORDER BY r.step
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING step
    """
)
_PG_INSERT_HISTOGRAMS = text(
    """
    INSERT INTO histograms (run_id, name, step, layout, packed)
    SELECT :run_id, h.name, h.step, h.layout, substring(CAST(:blob AS bytea) FROM h.start FOR h.size)
    FROM unnest(CAST(:names AS text[]), CAST(:steps AS bigint[]), CAST(:layouts AS int[]),
                CAST(:starts AS int[]), CAST(:sizes AS int[])) AS h(name, step, layout, start, size)
    """
)


def _advance_run(
    session: Session, run_id: int, by_step: dict[int, StepRecord], stored: set[int]
) -> None:
    newest = by_step[max(stored)]
    # Counting is unconditional; the summary only moves forward (one statement: every CASE
    # reads the row as it was), even if batches race.
    newer = or_(Run.last_step.is_(None), Run.last_step < newest.step)
    summary = bindparam("newest_summary", newest.scalars, type_=Run.__table__.c.summary.type)
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            step_count=Run.step_count + len(stored), updated_at=utcnow(),
            last_step=case((newer, newest.step), else_=Run.last_step),
            last_time=case((newer, newest.time if newest.time is not None else time.time()), else_=Run.last_time),
            summary=case((newer, summary), else_=Run.summary),
        ),
        # The loaded run keeps its attributes: the alert rules read only its id, name and project.
        execution_options={"synchronize_session": False},
    )
