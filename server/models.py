"""ORM models. The schema itself is owned by the Alembic migrations under migrations/."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fadewatch.protocol.limits import MAX_ERROR_CHARS, MAX_NAME_LENGTH
from fadewatch.protocol.rollouts import MAX_GROUP_KEY_CHARS

__all__ = ["Base", "Project", "Run", "Layout", "Step", "HistogramRow", "ScalarBlock", "HistogramBlock", "RolloutGroup",
           "Rollout", "ApiToken", "JsonDoc", "RowId", "utcnow", "SEARCH_INDEXES", "in_models"]

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")
# A 64-bit key on PostgreSQL; SQLite's INTEGER PRIMARY KEY is its 64-bit rowid already.
RowId = BigInteger().with_variant(Integer(), "sqlite")
# The text-search indexes of the rollouts, made by migration 0005 only: FTS5 tables (and their
# shadow tables) on SQLite, pg_trgm GIN indexes on PostgreSQL. No model describes them.
SEARCH_INDEXES = ("rollouts_fts", "rollout_groups_fts", "ix_rollouts_completion_trgm", "ix_rollout_groups_prompt_trgm")


def in_models(name: str | None, type_: str, _parents: dict | None = None) -> bool:
    """Alembic's include_name: leave the search indexes out of comparisons with the models."""
    return not (name and any(name == s or name.startswith(s + "_") for s in SEARCH_INDEXES))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_runs_project_name"),
        Index("ix_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The newest step and its scalars, kept in the ingest transaction for cheap run lists.
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[dict | None] = mapped_column(JsonDoc, nullable=True)
    step_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # What ended a failed or crashed run ("ValueError: ..."), as its trainer reported it.
    error: Mapped[str | None] = mapped_column(String(MAX_ERROR_CHARS), nullable=True)


class Layout(Base):
    """What a run's packed rows share, stored once (server/packed.py): scalar keys, or bins."""

    __tablename__ = "layouts"
    __table_args__ = (UniqueConstraint("run_id", "digest", name="uq_layouts_run_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # sha1 of the document's JSON text: the layout's identity within its run.
    digest: Mapped[str] = mapped_column(String(40))
    doc: Mapped[str] = mapped_column(Text)


class Step(Base):
    """One row per (run, step): its scalars packed in the order of one of the run's layouts."""

    __tablename__ = "steps"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[float] = mapped_column(Float)
    layout: Mapped[int] = mapped_column(Integer)
    packed: Mapped[bytes] = mapped_column(LargeBinary)
    nonfinite: Mapped[list | None] = mapped_column(JsonDoc, nullable=True)


class HistogramRow(Base):
    """One row per (run, histogram name, step): its numbers packed, its bins in a layout."""

    __tablename__ = "histograms"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layout: Mapped[int] = mapped_column(Integer)
    packed: Mapped[bytes] = mapped_column(LargeBinary)


class ScalarBlock(Base):
    """Scalars of steps [block * level, (block + 1) * level): per key its last value, min and max."""

    __tablename__ = "scalar_blocks"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Packed arrays (server/blocks.py): never queried inside, decoded without parsing floats.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class HistogramBlock(Base):
    """One histogram summed over the steps of a block (see ScalarBlock)."""

    __tablename__ = "histogram_blocks"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Packed (server/blocks.py), against a layout of its edges.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RolloutGroup(Base):
    """A whole group of rollouts (all completions of one prompt) kept at one step."""

    __tablename__ = "rollout_groups"
    __table_args__ = (
        UniqueConstraint("run_id", "step", "group_key", name="uq_rollout_groups_run_step_group"),
        Index("ix_rollout_groups_run_group", "run_id", "group_key"),
        Index("ix_rollout_groups_run_prompt", "run_id", "prompt_id"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(BigInteger)
    # Order of the hook's choice within the step: the groups of most |A| mass first.
    rank: Mapped[int] = mapped_column(Integer)
    group_key: Mapped[str] = mapped_column(String(MAX_GROUP_KEY_CHARS))
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_cut: Mapped[int] = mapped_column(Integer, default=0)
    # fadewatch.protocol.rollouts.prompt_id of the prompt: the same prompt at other steps.
    prompt_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    solve_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    size: Mapped[int] = mapped_column(Integer)


class Rollout(Base):
    """One completion of a kept group, with its numbers."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_group", "group_id", "idx"),
        Index("ix_rollouts_run_step", "run_id", "step"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("rollout_groups.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(BigInteger)
    idx: Mapped[int] = mapped_column(Integer)
    completion: Mapped[str] = mapped_column(Text)
    cut: Mapped[int] = mapped_column(Integer, default=0)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    advantage: Mapped[float | None] = mapped_column(Float, nullable=True)
    length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entropy: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Plain JSON: never queried inside. Named reward parts, and per-token text, entropy and log-prob.
    rewards: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    tokens: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_project", "project_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    scope: Mapped[str] = mapped_column(String(8))
    # sha256 of the secret: tokens are long random strings, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# The alerting tables live beside their code; importing them here puts them in Base.metadata.
from fadewatch.server.alerts import models as _alert_models  # noqa: E402,F401
