"""/api/v1/projects/{project}/silences: mute the notifications of matching alerts for a while."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException, Query

from fadewatch.server.alerts.schemas import SilenceIn, SilenceList, SilenceOut
from fadewatch.server.deps import AlertContextDep, DatabaseDep, ObjectId, Offset, ProjectRead, ProjectWrite
from fadewatch.server.store import silences
from fadewatch.server.store.alerts import project_for

router = APIRouter(prefix="/projects/{project}/silences", tags=["silences"])

NOT_FOUND = {404: {"description": "no such silence in this project"}}


def _epoch(when: datetime) -> float:
    # A time without a zone is read as UTC, as every time the API returns is.
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@router.get("", response_model=SilenceList)
def list_silences(
    db: DatabaseDep, ctx: AlertContextDep, project: ProjectRead,
    include_expired: bool = Query(default=False, description="also list silences that have ended"),
    limit: int = Query(default=500, ge=1, le=5000),
    offset: Offset = 0,
) -> SilenceList:
    """Silences that are active or start later (and, if asked, the expired ones), latest end first."""
    with db.transaction() as session:
        p = project_for(session, project.name, create=False)
        return SilenceList(silences=silences.list_silences(session, p.id, p.name, ctx.clock(), include_expired,
                                                           limit, offset))


@router.post("", response_model=SilenceOut, status_code=201)
def create_silence(body: SilenceIn, db: DatabaseDep, ctx: AlertContextDep, project: ProjectWrite) -> SilenceOut:
    """Mute notifications of alerts whose labels match every matcher, from starts_at (default now) until
    ends_at (or for duration_s). Alerts still change state and are listed; only messages are held back."""
    now = ctx.clock()
    starts = _epoch(body.starts_at) if body.starts_at is not None else now
    ends = _epoch(body.ends_at) if body.ends_at is not None else starts + body.duration_s
    if ends <= starts:
        raise HTTPException(422, "the silence must end after it starts")
    if ends <= now:
        raise HTTPException(422, "the silence would already be over: ends_at must be in the future")
    matchers = [m.model_dump() for m in body.matchers]
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        return silences.create_silence(session, p.id, p.name, matchers, starts, ends, body.comment,
                                       body.created_by, now)


@router.get("/{silence_id}", response_model=SilenceOut, responses=NOT_FOUND)
def get_silence(silence_id: ObjectId, db: DatabaseDep, ctx: AlertContextDep, project: ProjectRead) -> SilenceOut:
    with db.transaction() as session:
        p = project_for(session, project.name, create=False)
        return silences.get_silence(session, p.id, p.name, silence_id, ctx.clock())


@router.delete("/{silence_id}", response_model=SilenceOut, responses=NOT_FOUND)
def expire_silence(silence_id: ObjectId, db: DatabaseDep, ctx: AlertContextDep, project: ProjectWrite) -> SilenceOut:
    """Expire a silence now; it stays listed with include_expired. Held-back alerts notify on the next step."""
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        return silences.expire_silence(session, p.id, p.name, silence_id, ctx.clock())
