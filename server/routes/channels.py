"""/api/v1/projects/{project}/channels: where notifications go. Secrets are write-only."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from fadewatch.server.alerts.delivery.messages import new_message_id, render_for, test_message
from fadewatch.server.alerts.schemas import ChannelIn, ChannelList, ChannelOut, ChannelPatch, ChannelTestResult
from fadewatch.server.alerts.delivery.sender import send
from fadewatch.server.alerts.delivery.ssrf import TargetRefused, TargetUnresolved, resolve_target
from fadewatch.server.alerts.delivery.webhooks import check_secret
from fadewatch.server.deps import (AlertContextDep, DatabaseDep, NotifierClientDep, ObjectId, ProjectRead, ProjectWrite,
                                  SettingsDep)
from fadewatch.server.settings import ServerSettings
from fadewatch.server.store import channels
from fadewatch.server.store.alerts import project_for

router = APIRouter(prefix="/projects/{project}/channels", tags=["channels"])

NOT_FOUND = {404: {"description": "no such channel in this project"}}


def _check_url(url: str, settings: ServerSettings) -> None:
    """Refuse targets inside the server's own network unless the settings allow them.

    A name that does not resolve right now is accepted: every delivery checks the
    address again, and the test endpoint shows at once whether the target answers.
    """
    try:
        resolve_target(url, allow_loopback=settings.alert_allow_loopback_targets,
                       allow_private=settings.alert_allow_private_targets)
    except TargetUnresolved:
        pass
    except TargetRefused as exc:
        raise HTTPException(422, f"url refused: {exc}") from None


def _check_secret(kind: str, secret: str | None) -> None:
    if kind == "slack" and secret is not None:
        raise HTTPException(422, "slack channels take no secret: the webhook URL itself is the secret")
    if kind == "webhook":
        if secret is None:
            raise HTTPException(422, "a webhook channel needs a secret to sign with")
        try:
            check_secret(secret)
        except ValueError as exc:
            raise HTTPException(422, f"secret: {exc}") from None


@router.get("", response_model=ChannelList)
def list_channels(db: DatabaseDep, project: ProjectRead) -> ChannelList:
    """The project's channels; URLs come back with their secret parts masked, secrets never."""
    with db.transaction() as session:
        p = project_for(session, project.name, create=False)
        return ChannelList(channels=channels.list_channels(session, p.id, p.name))


@router.post("", response_model=ChannelOut, status_code=201, responses={
    409: {"description": "a channel of this name exists"},
    422: {"description": "invalid input, a refused target URL or an unusable secret"},
})
def create_channel(body: ChannelIn, db: DatabaseDep, settings: SettingsDep, ctx: AlertContextDep,
                   project: ProjectWrite) -> ChannelOut:
    """Add a Slack incoming webhook or a signed generic webhook."""
    _check_secret(body.kind, body.secret)
    _check_url(body.url, settings)  # before the transaction: it may wait on DNS
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        return channels.create_channel(session, p.id, p.name, body, ctx.clock())


@router.get("/{channel_id}", response_model=ChannelOut, responses=NOT_FOUND)
def get_channel(channel_id: ObjectId, db: DatabaseDep, project: ProjectRead) -> ChannelOut:
    with db.transaction() as session:
        p = project_for(session, project.name, create=False)
        return channels.get_channel(session, p.id, p.name, channel_id)


@router.patch("/{channel_id}", response_model=ChannelOut, responses={**NOT_FOUND, 409: {"description": "name taken"}})
def patch_channel(channel_id: ObjectId, patch: ChannelPatch, db: DatabaseDep, settings: SettingsDep,
                  ctx: AlertContextDep, project: ProjectWrite) -> ChannelOut:
    """Rename, re-target, rotate the secret, or switch a channel on or off."""
    if patch.url is not None:
        _check_url(patch.url, settings)  # before the transaction: it may wait on DNS
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        if patch.secret is not None:
            _check_secret(channels.get_channel(session, p.id, p.name, channel_id).kind, patch.secret)
        return channels.update_channel(session, p.id, p.name, channel_id, patch, ctx.clock())


@router.delete("/{channel_id}", status_code=204, responses=NOT_FOUND)
def delete_channel(channel_id: ObjectId, db: DatabaseDep, project: ProjectWrite) -> Response:
    """Delete a channel; notifications still queued for it are dropped."""
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        channels.delete_channel(session, p.id, channel_id)
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=ChannelTestResult, responses=NOT_FOUND)
def test_channel(channel_id: ObjectId, db: DatabaseDep, settings: SettingsDep, ctx: AlertContextDep,
                 http: NotifierClientDep, project: ProjectWrite) -> ChannelTestResult:
    """Send a test notification now, once, and say how the receiver answered."""
    with db.transaction() as session:
        p = project_for(session, project.name, create=True)
        target = channels.channel_target(session, p.id, channel_id)
    message_id = new_message_id()
    message = test_message(message_id=message_id, now=ctx.clock(), project=project.name, channel=target.name,
                           url=ctx.public_url)
    out = send(http, settings, kind=target.kind, url=target.url, secret=target.secret,
               message_id=message_id, body=render_for(target.kind, message), clock=ctx.clock)
    return ChannelTestResult(message_id=message_id, outcome=out.outcome, status_code=out.status_code,
                             error=out.error, duration_ms=out.duration_ms)
