"""Rollouts: whole groups of rollouts kept per step, with text search; steps.samples moves here.

Text search (substring, case-insensitive): FTS5 tables with the trigram tokenizer on
SQLite, kept by triggers, which LIKE reads; pg_trgm GIN indexes on PostgreSQL, which ILIKE reads. pg_trgm is a trusted
extension (PostgreSQL 13+): the database's owner may create it. Where the migrating role
may not, the indexes are left out with a warning and search reads the rows instead
(docs/server.md says how to add them later).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
KEY_CHARS = 200

# detail=none: the index records which rows hold each trigram, not where. LIKE still uses it
# (then checks the candidates' text), at a fifth of the size of full detail.
SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE rollouts_fts USING fts5(completion, content='rollouts', content_rowid='id', "
    "tokenize='trigram', detail='none')",
    "CREATE VIRTUAL TABLE rollout_groups_fts USING fts5(prompt, content='rollout_groups', content_rowid='id', "
    "tokenize='trigram', detail='none')",
    # Rows are only ever inserted and deleted (with their run): the index follows both.
    "CREATE TRIGGER rollouts_fts_insert AFTER INSERT ON rollouts BEGIN "
    "INSERT INTO rollouts_fts(rowid, completion) VALUES (new.id, new.completion); END",
    "CREATE TRIGGER rollouts_fts_delete AFTER DELETE ON rollouts BEGIN "
    "INSERT INTO rollouts_fts(rollouts_fts, rowid, completion) VALUES ('delete', old.id, old.completion); END",
    "CREATE TRIGGER rollout_groups_fts_insert AFTER INSERT ON rollout_groups BEGIN "
    "INSERT INTO rollout_groups_fts(rowid, prompt) VALUES (new.id, new.prompt); END",
    "CREATE TRIGGER rollout_groups_fts_delete AFTER DELETE ON rollout_groups BEGIN "
    "INSERT INTO rollout_groups_fts(rollout_groups_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt); END",
]
POSTGRES_SEARCH = [
    "CREATE INDEX ix_rollouts_completion_trgm ON rollouts USING gin (completion gin_trgm_ops)",
    "CREATE INDEX ix_rollout_groups_prompt_trgm ON rollout_groups USING gin (prompt gin_trgm_ops)",
]


def _row_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollout_groups",
        sa.Column("id", _row_id(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.String(KEY_CHARS), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("prompt_cut", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.String(16), nullable=True),
        sa.Column("solve_rate", sa.Float(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.UniqueConstraint("run_id", "step", "group_key", name="uq_rollout_groups_run_step_group"),
    )
    op.create_index("ix_rollout_groups_run_group", "rollout_groups", ["run_id", "group_key"])
    op.create_index("ix_rollout_groups_run_prompt", "rollout_groups", ["run_id", "prompt_id"])
    op.create_table(
        "rollouts",
        sa.Column("id", _row_id(), primary_key=True, autoincrement=True),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("rollout_groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("completion", sa.Text(), nullable=False),
        sa.Column("cut", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("advantage", sa.Float(), nullable=True),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("entropy", sa.Float(), nullable=True),
        sa.Column("rewards", sa.JSON(), nullable=True),
        sa.Column("tokens", sa.JSON(), nullable=True),
    )
    op.create_index("ix_rollouts_group", "rollouts", ["group_id", "idx"])
    op.create_index("ix_rollouts_run_step", "rollouts", ["run_id", "step"])
    _create_search()
    _move_samples()
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("samples")


def _create_search() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm could not be created (%s): rollout search will read the rows instead of an "
                    "index; see docs/server.md to add it later", str(exc.orig).strip())
        return
    for statement in POSTGRES_SEARCH:
        op.execute(statement)


def _move_samples() -> None:
    """Steps' samples (the hook's earlier format) become groups of rollouts without a prompt."""
    bind = op.get_bind()
    steps = sa.table("steps", sa.column("run_id"), sa.column("step"), sa.column("samples", sa.JSON()))
    groups = sa.table("rollout_groups", *(sa.column(c) for c in (
        "id", "run_id", "step", "rank", "group_key", "prompt", "prompt_cut", "prompt_id", "solve_rate", "size")))
    rollouts = sa.table("rollouts", *(sa.column(c) for c in (
        "group_id", "run_id", "step", "idx", "completion", "cut", "reward", "advantage", "length", "entropy")))
    query = sa.select(steps.c.run_id, steps.c.step, steps.c.samples).where(steps.c.samples.isnot(None))
    for run_id, step, samples in bind.execute(query).all():
        by_group: dict[str, list[dict]] = {}
        for i, sample in enumerate(samples if isinstance(samples, list) else ()):
            if isinstance(sample, dict):
                key = "" if sample.get("group") is None else str(sample["group"])[:KEY_CHARS]
                by_group.setdefault(key, []).append((i, sample))
        for rank, (key, members) in enumerate(by_group.items()):
            group_id = bind.execute(groups.insert().values(
                run_id=run_id, step=step, rank=rank, group_key=key, prompt=None, prompt_cut=0, prompt_id=None,
                solve_rate=None, size=len(members)).returning(groups.c.id)).scalar_one()
            bind.execute(rollouts.insert(), [
                {"group_id": group_id, "run_id": run_id, "step": step, "idx": i,
                 "completion": str(s.get("text", "")).replace("\x00", "\ufffd"), "cut": 0,
                 "reward": _number(s.get("reward")), "advantage": _number(s.get("advantage")),
                 "length": None, "entropy": None}
                for i, s in members])


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("samples", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                   nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT g.run_id, g.step, g.group_key, r.completion, r.reward, r.advantage FROM rollouts r "
        "JOIN rollout_groups g ON g.id = r.group_id ORDER BY g.run_id, g.step, g.rank, r.idx")).all()
    samples: dict[tuple[int, int], list[dict]] = {}
    for run_id, step, key, text, reward, advantage in rows:
        samples.setdefault((run_id, step), []).append(
            {"text": text[:20_000], "group": key or None, "reward": reward, "advantage": advantage})
    steps = sa.table("steps", sa.column("run_id"), sa.column("step"), sa.column("samples", sa.JSON()))
    for (run_id, step), items in samples.items():
        bind.execute(steps.update().where(steps.c.run_id == run_id, steps.c.step == step)
                     .values(samples=items[:64]))
    if bind.dialect.name == "sqlite":
        for name in ("rollouts_fts_insert", "rollouts_fts_delete", "rollout_groups_fts_insert",
                     "rollout_groups_fts_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS rollouts_fts")
        op.execute("DROP TABLE IF EXISTS rollout_groups_fts")
    op.drop_table("rollouts")
    op.drop_table("rollout_groups")
