"""Silences of a project: label matchers that mute notifications until they expire."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fadewatch.server.alerts.models import AlertSilence
from fadewatch.server.alerts.schemas import SilenceOut
from fadewatch.server.store.alerts import to_datetime
from fadewatch.server.store.errors import NotFound

__all__ = ["create_silence", "list_silences", "get_silence", "expire_silence"]


def _out(row: AlertSilence, project: str, now: float) -> SilenceOut:
    return SilenceOut(
        id=row.id, project=project, matchers=row.matchers, starts_at=to_datetime(row.starts_at),
        ends_at=to_datetime(row.ends_at), comment=row.comment, created_by=row.created_by,
        created_at=to_datetime(row.created_at), active=row.starts_at <= now < row.ends_at,
    )


def _load(session: Session, project_id: int, silence_id: int) -> AlertSilence:
    row = session.get(AlertSilence, silence_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"silence {silence_id} not found in this project")
    return row


def create_silence(session: Session, project_id: int, project: str, matchers: list[dict], starts_at: float,
                   ends_at: float, comment: str | None, created_by: str | None, now: float) -> SilenceOut:
    row = AlertSilence(project_id=project_id, matchers=matchers, starts_at=starts_at, ends_at=ends_at,
                       comment=comment, created_by=created_by, created_at=now)
    session.add(row)
    session.flush()
    return _out(row, project, now)


def list_silences(session: Session, project_id: int, project: str, now: float,
                  include_expired: bool = False, limit: int = 500, offset: int = 0) -> list[SilenceOut]:
    query = select(AlertSilence).where(AlertSilence.project_id == project_id)
    if not include_expired:
        query = query.where(AlertSilence.ends_at > now)
    query = query.order_by(AlertSilence.ends_at.desc(), AlertSilence.id.desc()).limit(limit).offset(offset)
    return [_out(r, project, now) for r in session.scalars(query)]


def get_silence(session: Session, project_id: int, project: str, silence_id: int, now: float) -> SilenceOut:
    return _out(_load(session, project_id, silence_id), project, now)


def expire_silence(session: Session, project_id: int, project: str, silence_id: int, now: float) -> SilenceOut:
    """End the silence now (an expired one is left as it is)."""
    row = _load(session, project_id, silence_id)
    if row.ends_at > now:
        row.ends_at = max(now, row.starts_at)
        session.flush()
    return _out(row, project, now)
