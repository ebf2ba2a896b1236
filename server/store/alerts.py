"""Alert states, events and the notification outbox: what the engine reads and writes, and
the alert reads of the API."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from fadewatch.server.alerts.evaluation.machine import Track
from fadewatch.server.alerts.models import (
    AlertChannel,
    AlertEvent,
    AlertNotification,
    AlertRule,
    AlertSilence,
    AlertState,
    DeliveryAttempt,
)
from fadewatch.server.alerts.delivery.messages import run_url
from fadewatch.server.alerts.schemas import (AlertDetail, AlertOut, AttemptOut, EpisodeOut, EventOut, MarkerOut,
                                             NotificationOut)
from fadewatch.server.auth import Principal
from fadewatch.server.models import Project, Run
from fadewatch.server.store.alert_summaries import changed_at
from fadewatch.server.store.errors import NotFound
from fadewatch.server.store.runs import find_project, get_or_create_project

__all__ = [
    "project_for",
    "api_rule_specs",
    "load_tracks",
    "save_tracks",
    "add_event",
    "add_notifications",
    "enabled_channels",
    "active_silences",
    "list_alerts",
    "get_alert",
    "run_markers",
    "track_memory",
    "episodes_of",
    "to_datetime",
]

_TRACK_FIELDS = (
    "state", "active_count", "clear_count", "evaluations", "last_step", "pending_step", "fired_step",
    "resolved_step", "fired_at", "resolved_at", "last_notified_at", "notified", "muted", "values",
    "context", "summary", "memory", "rule_hash", "severity", "detector",
)
_table = AlertState.__table__


def to_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def project_for(session: Session, name: str, *, create: bool) -> Project:
    """The project row; with ``create`` it is made if missing (rules before the first run).

    Callers have checked permissions already (ProjectRead / ProjectWrite in the routes).
    """
    project = find_project(session, name)
    if project is None:
        if not create:
            raise NotFound(f"project {name!r} not found")
        project = get_or_create_project(session, name)
        session.flush()
    return project


def api_rule_specs(session: Session, project_id: int) -> list[tuple[str, dict]]:
    """(hash, spec) of the rules set through the API for a project."""
    return [tuple(r) for r in session.execute(
        select(AlertRule.spec_hash, AlertRule.spec).where(AlertRule.project_id == project_id)
    )]


def load_tracks(session: Session, run_id: int) -> dict[str, Track]:
    cols = [_table.c[name] for name in ("id", "fingerprint", "rule", "labels", *_TRACK_FIELDS)]
    tracks = {}
    for row in session.execute(select(*cols).where(_table.c.run_id == run_id)).mappings():
        t = Track(**row)
        tracks[t.fingerprint] = t
    return tracks


def _row(t: Track) -> dict:
    return {name: getattr(t, name) for name in _TRACK_FIELDS}


def save_tracks(session: Session, run_id: int, project_id: int, tracks: list[Track], now: float) -> None:
    """Insert new tracks (their ids are set) and update the changed ones, one statement each."""
    new = [t for t in tracks if t.id is None]
    old = [t for t in tracks if t.id is not None]
    if new:
        rows = [{**_row(t), "run_id": run_id, "project_id": project_id, "fingerprint": t.fingerprint,
                 "rule": t.rule, "labels": t.labels, "updated_at": now} for t in new]
        stmt = insert(_table).returning(_table.c.id, _table.c.fingerprint)
        ids = {fp: i for i, fp in session.execute(stmt, rows)}
        for t in new:
            t.id = ids[t.fingerprint]
    if old:
        stmt = (
            update(_table)
            .where(_table.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in (*_TRACK_FIELDS, "updated_at")})
        )
        session.execute(stmt, [{**_row(t), "_id": t.id, "updated_at": now} for t in old])
    for t in tracks:
        t.dirty = False


def add_event(session: Session, t: Track, kind: str, step: int, now: float, muted: str | None,
              values: dict | None, context: dict | None, summary: str | None) -> int:
    """One event, with what the alert said at its step (values, diagnosis card, summary)."""
    event = AlertEvent(alert_id=t.id, kind=kind, step=step, at=now, severity=t.severity,
                       values=values, context=context, summary=summary, muted=muted)
    session.add(event)
    session.flush()
    return event.id


def add_notifications(session: Session, rows: list[dict]) -> None:
    if rows:
        session.execute(insert(AlertNotification.__table__), rows)


def enabled_channels(session: Session, project_id: int) -> list[tuple[int, str, str]]:
    return [tuple(r) for r in session.execute(
        select(AlertChannel.id, AlertChannel.name, AlertChannel.kind)
        .where(AlertChannel.project_id == project_id, AlertChannel.enabled.is_(True))
        .order_by(AlertChannel.id)
    )]


def active_silences(session: Session, project_id: int, now: float) -> list[tuple[int, list[dict]]]:
    return [tuple(r) for r in session.execute(
        select(AlertSilence.id, AlertSilence.matchers)
        .where(AlertSilence.project_id == project_id, AlertSilence.starts_at <= now,
               AlertSilence.ends_at > now)
        .order_by(AlertSilence.id)
    )]


# Episodes an alert has had: one resolved event closes each; a firing alert is in one more.
_closed_episodes = (select(func.count()).where(AlertEvent.alert_id == AlertState.id, AlertEvent.kind == "resolved")
                    .correlate(AlertState).scalar_subquery())


def _alert_out(s: AlertState, run_name: str, project: str, public_url: str, closed: int) -> AlertOut:
    return AlertOut(
        id=s.id, project=project, run_id=s.run_id, run_name=run_name, fingerprint=s.fingerprint,
        rule=s.rule, detector=s.detector, severity=s.severity, labels=s.labels or {}, state=s.state,
        step=s.fired_step if s.state != "pending" and s.fired_step is not None else s.pending_step,
        summary=s.summary, values=s.values, diagnosis=s.context, pending_step=s.pending_step,
        fired_step=s.fired_step, resolved_step=s.resolved_step, last_step=s.last_step,
        fired_at=to_datetime(s.fired_at), resolved_at=to_datetime(s.resolved_at),
        last_notified_at=to_datetime(s.last_notified_at), notified=s.notified, muted=s.muted,
        episode=closed + (s.state == "firing"), url=run_url(public_url, s.run_id),
    )


def episodes_of(session: Session, alert_id: int) -> list[EpisodeOut]:
    """The alert's episodes from its events: a firing opens one (a later firing event before the
    resolution is the message of a muted episode going out), a resolution closes it."""
    out: list[EpisodeOut] = []
    current: dict | None = None
    for kind, step, at, muted in session.execute(
        select(AlertEvent.kind, AlertEvent.step, AlertEvent.at, AlertEvent.muted)
        .where(AlertEvent.alert_id == alert_id, AlertEvent.kind.in_(("firing", "resolved"))).order_by(AlertEvent.id)
    ):
        if kind == "firing":
            if current is None:
                current = {"number": len(out) + 1, "fired_step": step, "fired_at": to_datetime(at),
                           "resolved_step": None, "resolved_at": None, "notified": muted is None}
            else:
                current["notified"] = current["notified"] or muted is None
        elif current is not None:
            out.append(EpisodeOut(**{**current, "resolved_step": step, "resolved_at": to_datetime(at)}))
            current = None
    if current is not None:
        out.append(EpisodeOut(**current))
    return out


def list_alerts(
    session: Session, who: Principal, public_url: str, *, project: str | None = None,
    run_id: int | None = None, states: list[str] | None = None, severity: str | None = None,
    rule: str | None = None, limit: int = 200, offset: int = 0,
) -> tuple[list[AlertOut], int]:
    """A page of alerts, latest transition first, and how many match in all."""
    where = []
    if project is not None:
        who.require_project(project, write=False)
    if not who.is_open:
        where.append(AlertState.project_id == who.project_id)
    if project is not None:
        where.append(Project.name == project)
    if run_id is not None:
        where.append(AlertState.run_id == run_id)
    # Inactive tracks are detectors still learning or never tripped: not alerts unless asked for.
    where.append(AlertState.state.in_(states or ("pending", "firing", "resolved")))
    if severity is not None:
        where.append(AlertState.severity == severity)
    if rule is not None:
        where.append(AlertState.rule == rule)
    joined = (
        select(AlertState, Run.name, Project.name)
        .join(Run, Run.id == AlertState.run_id)
        .join(Project, Project.id == AlertState.project_id)
        .where(*where)
    )
    total = session.scalar(select(func.count()).select_from(joined.subquery()))
    page = (joined.add_columns(_closed_episodes).order_by(changed_at.desc(), AlertState.id.desc())
            .limit(limit).offset(offset))
    return [_alert_out(s, run_name, proj, public_url, closed)
            for s, run_name, proj, closed in session.execute(page)], total


def get_alert(session: Session, alert_id: int, who: Principal, public_url: str, max_events: int = 200) -> AlertDetail:
    row = session.execute(
        select(AlertState, Run.name, Project.name, _closed_episodes)
        .join(Run, Run.id == AlertState.run_id)
        .join(Project, Project.id == AlertState.project_id)
        .where(AlertState.id == alert_id)
    ).first()
    if row is None or not who.can_read(row[0].project_id):
        raise NotFound(f"alert {alert_id} not found")
    state, run_name, project, closed = row
    events = list(session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id.desc()).limit(max_events)
    ))[::-1]
    notes = list(session.scalars(
        select(AlertNotification).where(AlertNotification.event_id.in_([e.id for e in events]))
        .order_by(AlertNotification.id)
    )) if events else []
    attempts: dict[int, list[AttemptOut]] = {}
    if notes:
        for a in session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_([n.id for n in notes]))
            .order_by(DeliveryAttempt.id)
        ):
            attempts.setdefault(a.notification_id, []).append(AttemptOut(
                at=to_datetime(a.at), outcome=a.outcome, status_code=a.status_code, error=a.error,
                duration_ms=a.duration_ms))
    by_event: dict[int, list[NotificationOut]] = {}
    for n in notes:
        by_event.setdefault(n.event_id, []).append(notification_out(n, attempts.get(n.id, [])))
    out = _alert_out(state, run_name, project, public_url, closed)
    return AlertDetail(**out.model_dump(), episodes=episodes_of(session, alert_id), events=[
        EventOut(id=e.id, kind=e.kind, step=e.step, at=to_datetime(e.at), severity=e.severity,
                 summary=e.summary, values=e.values, diagnosis=e.context, muted=e.muted,
                 notifications=by_event.get(e.id, []))
        for e in events
    ])


def notification_out(n: AlertNotification, log: list[AttemptOut]) -> NotificationOut:
    return NotificationOut(
        message_id=n.message_id, channel_id=n.channel_id, channel_name=n.channel_name, kind=n.kind,
        status=n.status, attempts=n.attempts, created_at=to_datetime(n.created_at),
        next_attempt_at=to_datetime(n.next_attempt_at) if n.status == "pending" else None,
        delivered_at=to_datetime(n.delivered_at), last_error=n.last_error, log=log,
    )


def run_markers(session: Session, run_id: int, kinds: tuple[str, ...], min_step: int | None = None,
                after_event: int | None = None) -> list[MarkerOut]:
    """The alert transitions of one run, oldest first: what its charts mark (one query)."""
    where = [AlertState.run_id == run_id, AlertEvent.kind.in_(kinds)]
    if min_step is not None:
        where.append(AlertEvent.step >= min_step)
    if after_event is not None:
        where.append(AlertEvent.id > after_event)
    rows = session.execute(
        select(AlertEvent.id, AlertEvent.alert_id, AlertEvent.step, AlertEvent.kind, AlertState.rule,
               AlertEvent.severity, AlertEvent.summary)
        .join(AlertState, AlertState.id == AlertEvent.alert_id).where(*where)
        .order_by(AlertEvent.step, AlertEvent.id).limit(MAX_MARKERS)
    ).all()
    return [MarkerOut(event_id=r[0], alert_id=r[1], step=r[2], kind=r[3], rule=r[4], severity=r[5], summary=r[6])
            for r in rows]


MAX_MARKERS = 5000


def track_memory(session: Session, run_id: int, fingerprint: str) -> tuple[dict, str, int | None] | None:
    """(detector memory, state, last step) of one fingerprint of a run, or None if never evaluated."""
    row = session.execute(
        select(AlertState.memory, AlertState.state, AlertState.last_step)
        .where(AlertState.run_id == run_id, AlertState.fingerprint == fingerprint)
    ).first()
    return None if row is None else (row[0] or {}, row[1], row[2])
