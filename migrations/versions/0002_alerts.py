"""Alerts: rules, states, events, channels, notification outbox, delivery log, silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _project_fk() -> sa.Column:
    return sa.Column(
        "project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec", json_doc, nullable=False),
        sa.Column("spec_hash", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),
    )
    op.create_table(
        "alert_states",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        _project_fk(),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("detector", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("labels", json_doc, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("active_count", sa.Integer(), nullable=False),
        sa.Column("clear_count", sa.Integer(), nullable=False),
        sa.Column("evaluations", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("pending_step", sa.BigInteger(), nullable=True),
        sa.Column("fired_step", sa.BigInteger(), nullable=True),
        sa.Column("resolved_step", sa.BigInteger(), nullable=True),
        sa.Column("fired_at", sa.Float(), nullable=True),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("last_notified_at", sa.Float(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("muted", sa.String(40), nullable=True),
        sa.Column("values", json_doc, nullable=True),
        sa.Column("context", json_doc, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("memory", json_doc, nullable=False),
        sa.Column("rule_hash", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("run_id", "fingerprint", name="uq_alert_states_run_fingerprint"),
    )
    op.create_index("ix_alert_states_project_state", "alert_states", ["project_id", "state"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "alert_id", sa.Integer(), sa.ForeignKey("alert_states.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("values", json_doc, nullable=True),
        sa.Column("context", json_doc, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("muted", sa.String(40), nullable=True),
    )
    op.create_index("ix_alert_events_alert", "alert_events", ["alert_id", "id"])
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_channels_project_name"),
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.String(40), nullable=False, unique=True),
        _project_fk(),
        sa.Column(
            "event_id", sa.Integer(), sa.ForeignKey("alert_events.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column(
            "channel_id", sa.Integer(), sa.ForeignKey("alert_channels.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("channel_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index(
        "ix_alert_notifications_queue", "alert_notifications", ["status", "channel_id", "id"]
    )
    op.create_index("ix_alert_notifications_event", "alert_notifications", ["event_id"])
    op.create_table(
        "alert_delivery_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "notification_id",
            sa.Integer(),
            sa.ForeignKey("alert_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_alert_delivery_attempts_notification",
        "alert_delivery_attempts",
        ["notification_id", "id"],
    )
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk(),
        sa.Column("matchers", json_doc, nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_alert_silences_project_ends", "alert_silences", ["project_id", "ends_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_silences_project_ends", table_name="alert_silences")
    op.drop_table("alert_silences")
    op.drop_index("ix_alert_delivery_attempts_notification", table_name="alert_delivery_attempts")
    op.drop_table("alert_delivery_attempts")
    op.drop_index("ix_alert_notifications_event", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_queue", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_table("alert_channels")
    op.drop_index("ix_alert_events_alert", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_alert_states_project_state", table_name="alert_states")
    op.drop_table("alert_states")
    op.drop_table("alert_rules")
