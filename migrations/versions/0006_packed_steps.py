"""Packed steps: scalars and histogram numbers as arrays, their names and bins stored once per run.

Steps' JSON scalars become a packed array against a layout of the run (table `layouts`),
histograms' JSON records their packed numbers against a layout of their bins, and step
blocks refer to layouts instead of repeating keys and edges (server/packed.py, server/blocks.py).
Every value converts bit for bit, both ways. On PostgreSQL the dropped JSON columns keep their
space until the tables are rewritten: VACUUM FULL steps, histograms (docs/deployment.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""
import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHUNK = 5000
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_layouts = sa.table("layouts", sa.column("id"), sa.column("run_id"), sa.column("digest"), sa.column("doc"))
_steps = sa.table("steps", sa.column("run_id"), sa.column("step"), sa.column("scalars", JSON_DOC),
                  sa.column("layout"), sa.column("packed"))
_hists = sa.table("histograms", sa.column("run_id"), sa.column("name"), sa.column("step"),
                  sa.column("data", sa.JSON()), sa.column("layout"), sa.column("packed"))
_sblocks = sa.table("scalar_blocks", sa.column("run_id"), sa.column("level"), sa.column("block"),
                    sa.column("data"))
_hblocks = sa.table("histogram_blocks", sa.column("run_id"), sa.column("name"), sa.column("level"),
                    sa.column("block"), sa.column("data"), sa.column("packed"))


class _RunLayouts:
    """Layout ids of one run, made as the conversion meets new documents."""

    def __init__(self, bind, run_id: int) -> None:
        from fadewatch.server.packed import layout_digest

        self.bind, self.run_id, self.digest = bind, run_id, layout_digest
        self.ids = {d: i for i, d in bind.execute(sa.select(_layouts.c.id, _layouts.c.digest)
                                                  .where(_layouts.c.run_id == run_id))}
        self.docs: dict[int, object] = {}

    def id(self, doc) -> int:
        digest = self.digest(doc)
        if digest not in self.ids:
            self.ids[digest] = self.bind.execute(_layouts.insert().values(
                run_id=self.run_id, digest=digest, doc=orjson.dumps(doc).decode()).returning(_layouts.c.id)).scalar_one()
        return self.ids[digest]

    def doc(self, layout_id: int):
        if layout_id not in self.docs:
            text = self.bind.execute(sa.select(_layouts.c.doc).where(_layouts.c.id == layout_id)).scalar_one()
            self.docs[layout_id] = orjson.loads(text)
        return self.docs[layout_id]


def _chunks(bind, table, key_cols: tuple, columns: tuple, run_id: int):
    """Rows of one run in key order, CHUNK at a time (keyset pagination)."""
    keys = [table.c[c] for c in key_cols]
    last = None
    while True:
        query = sa.select(*keys, *(table.c[c] for c in columns)).where(table.c.run_id == run_id)
        if last is not None:
            query = query.where(sa.tuple_(*keys) > sa.tuple_(*last))
        rows = bind.execute(query.order_by(*keys).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = tuple(rows[-1][:len(key_cols)])


def _update(bind, table, key_cols: tuple, rows: list[dict]) -> None:
    where = [table.c[c] == sa.bindparam("k_" + c) for c in ("run_id", *key_cols)]
    values = {c: sa.bindparam(c) for c in rows[0] if not c.startswith("k_")}
    bind.execute(table.update().where(*where).values(**values), rows)


def _run_ids(bind) -> list[int]:
    return [r[0] for r in bind.execute(sa.text("SELECT id FROM runs ORDER BY id"))]


def upgrade() -> None:
    from fadewatch.migrations import format_0005 as old
    from fadewatch.server import blocks, packed

    op.create_table(
        "layouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(40), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.UniqueConstraint("run_id", "digest", name="uq_layouts_run_digest"),
    )
    for table in ("steps", "histograms"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("layout", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("packed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.add_column(sa.Column("packed", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    for run_id in _run_ids(bind):
        layouts = _RunLayouts(bind, run_id)
        for rows in _chunks(bind, _steps, ("step",), ("scalars",), run_id):
            _update(bind, _steps, ("step",), [
                {"k_run_id": run_id, "k_step": step, "layout": layouts.id(list(scalars or {})),
                 "packed": packed.pack_scalars(list((scalars or {}).values()))} for step, scalars in rows])
        for rows in _chunks(bind, _hists, ("name", "step"), ("data",), run_id):
            updates = []
            for name, step, data in rows:
                doc = packed.histogram_layout(data)
                updates.append({"k_run_id": run_id, "k_name": name, "k_step": step, "layout": layouts.id(doc),
                                "packed": packed.pack_histogram(data, doc)})
            _update(bind, _hists, ("name", "step"), updates)
        for rows in _chunks(bind, _sblocks, ("level", "block"), ("data",), run_id):
            updates = []
            for level, index, data in rows:
                block = old.unpack_scalar_block(data)
                updates.append({"k_run_id": run_id, "k_level": level, "k_block": index,
                                "data": blocks.pack_scalar_block(block, layouts.id(list(block["k"])))})
            _update(bind, _sblocks, ("level", "block"), updates)
        for rows in _chunks(bind, _hblocks, ("name", "level", "block"), ("data",), run_id):
            updates = []
            for name, level, index, data in rows:
                block = old.unpack_histogram_block(data)
                layout_id = layouts.id(blocks.histogram_block_layout(block))
                updates.append({"k_run_id": run_id, "k_name": name, "k_level": level, "k_block": index,
                                "packed": blocks.pack_histogram_block(block, layout_id)})
            _update(bind, _hblocks, ("name", "level", "block"), updates)
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("scalars")
        batch.alter_column("layout", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("packed", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("histograms") as batch:
        batch.drop_column("data")
        batch.alter_column("layout", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("packed", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.alter_column("packed", new_column_name="data", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    from fadewatch.migrations import format_0005 as old
    from fadewatch.server import blocks, packed

    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("scalars", JSON_DOC, nullable=True))
    with op.batch_alter_table("histograms") as batch:
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.alter_column("data", new_column_name="packed", existing_type=sa.LargeBinary())
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.add_column(sa.Column("data", sa.Text(), nullable=True))
    bind = op.get_bind()
    for run_id in _run_ids(bind):
        layouts = _RunLayouts(bind, run_id)
        for rows in _chunks(bind, _steps, ("step",), ("layout", "packed"), run_id):
            _update(bind, _steps, ("step",), [
                {"k_run_id": run_id, "k_step": step, "scalars": packed.unpack_scalars(raw, layouts.doc(layout_id))}
                for step, layout_id, raw in rows])
        for rows in _chunks(bind, _hists, ("name", "step"), ("layout", "packed"), run_id):
            _update(bind, _hists, ("name", "step"), [
                {"k_run_id": run_id, "k_name": name, "k_step": step,
                 "data": packed.unpack_histogram(raw, layouts.doc(layout_id))} for name, step, layout_id, raw in rows])
        for rows in _chunks(bind, _sblocks, ("level", "block"), ("data",), run_id):
            _update(bind, _sblocks, ("level", "block"), [
                {"k_run_id": run_id, "k_level": level, "k_block": index, "data": old.pack_scalar_block(
                    blocks.unpack_scalar_block(raw, layouts.doc(blocks.scalar_block_layout(raw))))}
                for level, index, raw in rows])
        for rows in _chunks(bind, _hblocks, ("name", "level", "block"), ("packed",), run_id):
            _update(bind, _hblocks, ("name", "level", "block"), [
                {"k_run_id": run_id, "k_name": name, "k_level": level, "k_block": index,
                 "data": old.pack_histogram_block(blocks.unpack_histogram_block(
                     raw, layouts.doc(blocks.histogram_block_layout_id(raw))))}
                for name, level, index, raw in rows])
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("packed")
        batch.drop_column("layout")
        batch.alter_column("scalars", existing_type=JSON_DOC, nullable=False)
    with op.batch_alter_table("histograms") as batch:
        batch.drop_column("packed")
        batch.drop_column("layout")
        batch.alter_column("data", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("histogram_blocks") as batch:
        batch.drop_column("packed")
        batch.alter_column("data", existing_type=sa.Text(), nullable=False)
    op.drop_table("layouts")
