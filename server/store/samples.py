"""Reads of the sampled completions stored with each step."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.models import Step
from fadewatch.server.schemas import SampleList, SampleOut
from fadewatch.server.store.runs import load_run

__all__ = ["recent_samples"]


def _has_samples(session: Session):
    # A step without samples holds SQL NULL (PostgreSQL) or the JSON literal null (SQLite).
    if session.get_bind().dialect.name == "postgresql":
        return func.jsonb_typeof(Step.samples) == "array"
    return func.json_type(Step.samples) == "array"


def recent_samples(
    session: Session,
    run_id: int,
    who: Principal,
    limit: int,
    min_step: int | None = None,
    max_step: int | None = None,
) -> SampleList:
    """Up to `limit` samples of the newest steps in [min_step, max_step] that hold any."""
    load_run(session, run_id, who)
    query = select(Step.step, Step.samples).where(Step.run_id == run_id, _has_samples(session))
    if min_step is not None:
        query = query.where(Step.step >= min_step)
    if max_step is not None:
        query = query.where(Step.step <= max_step)
    # Every row holds at least one sample, so `limit` rows are always enough.
    rows = session.execute(query.order_by(Step.step.desc()).limit(limit)).all()
    out: list[SampleOut] = []
    for step, samples in rows:
        for s in samples:
            if len(out) == limit:
                break
            out.append(SampleOut(step=step, text=s.get("text", ""), group=s.get("group"),
                                 reward=s.get("reward"), advantage=s.get("advantage")))
    return SampleList(run_id=run_id, samples=out)
