"""Notification channels of a project. Secrets go in and never come out of this module's reads."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fadewatch.server.alerts.models import AlertChannel
from fadewatch.server.alerts.schemas import ChannelIn, ChannelOut, ChannelPatch
from fadewatch.server.store import delivery
from fadewatch.server.store.alerts import to_datetime
from fadewatch.server.store.errors import Conflict, NotFound

__all__ = ["Target", "list_channels", "get_channel", "create_channel", "update_channel", "delete_channel",
           "channel_target", "mask_url"]


@dataclass(frozen=True)
class Target:
    """What sending to a channel needs (the secret included): for the server's own use only."""

    id: int
    name: str
    kind: str
    url: str
    secret: str | None


def mask_url(kind: str, url: str) -> str:
    """The URL with the parts that act as credentials hidden.

    A Slack incoming-webhook URL is itself the secret, so only its host and first path
    segment are shown; a webhook URL keeps its path, with query values hidden.
    """
    parts = urlsplit(url)
    if kind == "slack":
        first = parts.path.strip("/").split("/", 1)[0]
        path = f"/{first}/***" if first else "/***"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _out(row: AlertChannel, project: str) -> ChannelOut:
    return ChannelOut(
        id=row.id, project=project, name=row.name, kind=row.kind, url=mask_url(row.kind, row.url),
        has_secret=row.secret is not None, enabled=row.enabled,
        created_at=to_datetime(row.created_at), updated_at=to_datetime(row.updated_at),
    )


def _load(session: Session, project_id: int, channel_id: int) -> AlertChannel:
    row = session.get(AlertChannel, channel_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"channel {channel_id} not found in this project")
    return row


def list_channels(session: Session, project_id: int, project: str) -> list[ChannelOut]:
    rows = session.scalars(select(AlertChannel).where(AlertChannel.project_id == project_id).order_by(AlertChannel.id))
    return [_out(r, project) for r in rows]


def get_channel(session: Session, project_id: int, project: str, channel_id: int) -> ChannelOut:
    return _out(_load(session, project_id, channel_id), project)


def _flush_unique(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"a channel named {name!r} already exists in this project") from None


def create_channel(session: Session, project_id: int, project: str, body: ChannelIn, now: float) -> ChannelOut:
    row = AlertChannel(project_id=project_id, name=body.name, kind=body.kind, url=body.url, secret=body.secret,
                       enabled=body.enabled, created_at=now, updated_at=now)
    session.add(row)
    _flush_unique(session, body.name)
    return _out(row, project)


def update_channel(session: Session, project_id: int, project: str, channel_id: int, patch: ChannelPatch,
                   now: float) -> ChannelOut:
    row = _load(session, project_id, channel_id)
    for name, value in patch.model_dump(exclude_unset=True).items():
        setattr(row, name, value)
    row.updated_at = now
    _flush_unique(session, row.name)
    return _out(row, project)


def delete_channel(session: Session, project_id: int, channel_id: int) -> None:
    row = _load(session, project_id, channel_id)
    delivery.drop_pending(session, row.id, "channel deleted")
    session.delete(row)
    session.flush()


def channel_target(session: Session, project_id: int, channel_id: int) -> Target:
    row = _load(session, project_id, channel_id)
    return Target(row.id, row.name, row.kind, row.url, row.secret)
