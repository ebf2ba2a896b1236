"""Tables of the alerting: rules, per-fingerprint states, events, channels, outbox, silences.

Times the delivery worker schedules by are epoch seconds (floats), so its injected clock
compares with them directly on every database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fadewatch.server.models import Base, JsonDoc

__all__ = [
    "AlertRule",
    "AlertState",
    "AlertEvent",
    "AlertChannel",
    "AlertNotification",
    "DeliveryAttempt",
    "AlertSilence",
    "ALERT_TABLES",
]


class AlertRule(Base):
    """A project's own rule (from the API); it overrides a default or file rule of the same name."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict] = mapped_column(JsonDoc)
    spec_hash: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class AlertState(Base):
    """One (run, rule, labels) fingerprint: its lifecycle state and its detector's memory."""

    __tablename__ = "alert_states"
    __table_args__ = (
        UniqueConstraint("run_id", "fingerprint", name="uq_alert_states_run_fingerprint"),
        Index("ix_alert_states_project_state", "project_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(100))
    detector: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(8))
    labels: Mapped[dict] = mapped_column(JsonDoc)
    state: Mapped[str] = mapped_column(String(10))
    active_count: Mapped[int] = mapped_column(Integer)
    clear_count: Mapped[int] = mapped_column(Integer)
    evaluations: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pending_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fired_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resolved_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_notified_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    notified: Mapped[bool] = mapped_column(Boolean)
    muted: Mapped[str | None] = mapped_column(String(40), nullable=True)
    values: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    context: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    memory: Mapped[dict] = mapped_column(JsonDoc)
    rule_hash: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[float] = mapped_column(Float)


class AlertEvent(Base):
    """A notifiable transition of an alert: firing, resolved or a repeat while firing."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert_states.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    step: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(8))
    values: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    context: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    muted: Mapped[str | None] = mapped_column(String(40), nullable=True)


class AlertChannel(Base):
    """Where a project's notifications go. The secret is write-only: no read returns it."""

    __tablename__ = "alert_channels"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_alert_channels_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class AlertNotification(Base):
    """The outbox: one message for one channel, written with the state change that caused it.

    `id` orders delivery within a channel; `message_id` is the stable id receivers dedupe by.
    """

    __tablename__ = "alert_notifications"
    __table_args__ = (
        Index("ix_alert_notifications_queue", "status", "channel_id", "id"),
        Index("ix_alert_notifications_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_events.id", ondelete="CASCADE"), nullable=True
    )
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_channels.id", ondelete="SET NULL"), nullable=True
    )
    channel_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class DeliveryAttempt(Base):
    """The delivery log: one row per try of a notification."""

    __tablename__ = "alert_delivery_attempts"
    __table_args__ = (Index("ix_alert_delivery_attempts_notification", "notification_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("alert_notifications.id", ondelete="CASCADE")
    )
    at: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(10))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)


class AlertSilence(Base):
    """Mutes notifications of alerts whose labels match every matcher, until ends_at."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_project_ends", "project_id", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    matchers: Mapped[list] = mapped_column(JsonDoc)
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


ALERT_TABLES = (
    "alert_delivery_attempts",
    "alert_notifications",
    "alert_events",
    "alert_states",
    "alert_silences",
    "alert_channels",
    "alert_rules",
)
