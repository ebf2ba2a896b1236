"""The notification outbox as a queue: claim the head of each channel's queue, record outcomes.

A claim is a lease: `lease_until` is set with a conditional UPDATE, so of several workers
(threads or server processes on one database) exactly one wins a notification, and a
worker that dies holding one only delays it until the lease runs out. Per channel, only the
oldest pending notification is ever claimed, so a channel receives its messages in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from fadewatch.server.alerts.models import AlertChannel, AlertNotification, DeliveryAttempt

__all__ = ["Job", "claim", "record", "drop_pending"]

_N = AlertNotification


@dataclass(frozen=True)
class Job:
    """One claimed notification, with what sending it needs."""

    id: int
    message_id: str
    channel_id: int
    channel_kind: str
    url: str
    secret: str | None
    body: str
    attempts: int
    created_at: float
    lease_until: float


def _heads(session: Session) -> list:
    first = (
        select(func.min(_N.id))
        .where(_N.status == "pending")
        .group_by(_N.channel_id)
        .scalar_subquery()
    )
    query = (
        select(_N.id, _N.message_id, _N.channel_id, _N.body, _N.attempts, _N.created_at,
               _N.next_attempt_at, _N.lease_until, AlertChannel.kind, AlertChannel.url,
               AlertChannel.secret, AlertChannel.enabled)
        .outerjoin(AlertChannel, AlertChannel.id == _N.channel_id)
        .where(_N.status == "pending", _N.id.in_(first))
        .order_by(_N.id)
    )
    return list(session.execute(query))


def claim(session: Session, now: float, lease_until: float, limit: int | None = None) -> tuple[list[Job], float | None]:
    """Lease the due channel heads, at most ``limit``. Returns the jobs and when the next head falls due.

    A caller claims only what it sends at once: a job left waiting behind others could see its
    lease run out before it is sent, and another worker would then send it too.
    """
    jobs: list[Job] = []
    next_due: float | None = None
    for row in _heads(session):
        if limit is not None and len(jobs) >= limit:
            break
        if row.url is None or not row.enabled:
            # Deleted or disabled since its messages were queued: they go nowhere.
            reason = "channel deleted" if row.url is None else "channel disabled"
            same = _N.channel_id.is_(None) if row.channel_id is None else _N.channel_id == row.channel_id
            session.execute(update(_N).where(same, _N.status == "pending")
                            .values(status="failed", last_error=reason, lease_until=None))
            continue
        due = max(row.next_attempt_at, row.lease_until or 0.0)
        if due > now:
            next_due = due if next_due is None else min(next_due, due)
            continue
        won = session.execute(
            update(_N)
            .where(_N.id == row.id, _N.status == "pending",
                   or_(_N.lease_until.is_(None), _N.lease_until <= now))
            .values(lease_until=lease_until)
        ).rowcount
        if won:
            jobs.append(Job(row.id, row.message_id, row.channel_id, row.kind, row.url, row.secret,
                            row.body, row.attempts, row.created_at, lease_until))
    return jobs, next_due


def record(session: Session, job: Job, outcome, done: float, next_attempt: float, max_age_s: float) -> str:
    """Log one attempt and move the notification on; returns its new status."""
    session.execute(insert(DeliveryAttempt).values(
        notification_id=job.id, at=done, outcome=outcome.outcome, status_code=outcome.status_code,
        error=outcome.error, duration_ms=outcome.duration_ms,
    ))
    values: dict = {"attempts": _N.attempts + 1, "lease_until": None, "last_error": outcome.error}
    status = "pending"
    if outcome.outcome == "delivered":
        status = "delivered"
        values.update(status=status, delivered_at=done)
    elif outcome.outcome == "failed":
        status = "failed"
        values["status"] = status
    elif done - job.created_at >= max_age_s:
        status = "failed"
        values.update(status=status, last_error=f"gave up after {max_age_s:g} s: {outcome.error}"[:500])
    else:
        values["next_attempt_at"] = next_attempt
    # Only while the lease is still ours: a worker that lost it must not undo another's work.
    session.execute(update(_N).where(and_(_N.id == job.id, _N.status == "pending",
                                          _N.lease_until == job.lease_until)).values(values))
    return status


def drop_pending(session: Session, channel_id: int, reason: str) -> int:
    """Fail the queued notifications of a channel (it is being deleted)."""
    return session.execute(
        update(_N).where(_N.channel_id == channel_id, _N.status == "pending")
        .values(status="failed", last_error=reason, lease_until=None)
    ).rowcount
