"""Step blocks: scalars and histograms pre-aggregated over aligned ranges of steps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

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
    from fadewatch.migrations.format_0005 import rebuild_blocks

    rebuild_blocks(op.get_bind())


def downgrade() -> None:
    op.drop_table("histogram_blocks")
    op.drop_table("scalar_blocks")
