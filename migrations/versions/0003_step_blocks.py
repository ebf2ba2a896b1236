"""Step blocks: scalars and histograms pre-aggregated over aligned ranges of steps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _run_fk() -> sa.Column:
    return sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "scalar_blocks",
        _run_fk(),
        sa.Column("level", sa.Integer(), primary_key=True),
        sa.Column("block", sa.BigInteger(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "histogram_blocks",
        _run_fk(),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("level", sa.Integer(), primary_key=True),
        sa.Column("block", sa.BigInteger(), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
    )
    # Runs stored before this revision get their blocks now, from their steps.
    from fadewatch.server.store.blocks import rebuild

    session = Session(bind=op.get_bind())
    run_ids = [r[0] for r in session.execute(sa.text("SELECT id FROM runs ORDER BY id"))]
    rebuild(session, run_ids)
    session.flush()


def downgrade() -> None:
    op.drop_table("histogram_blocks")
    op.drop_table("scalar_blocks")
