"""Migrations are the schema: they run on SQLite and PostgreSQL and match the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from fadewatch.server.app import prepare_database
from fadewatch.server.db import make_engine
from fadewatch.server.migrate import SchemaOutOfDate, current_revision, head_revision
from fadewatch.server.models import Base, in_models
from fadewatch.server.settings import ServerSettings


def test_migrated_schema_matches_the_models(db_url, tmp_path):
    db = prepare_database(ServerSettings(dir=tmp_path, database_url=db_url))
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": in_models}), Base.metadata)
    assert diff == []
    assert current_revision(db.engine) == head_revision()


def test_postgres_out_of_date_schema_is_refused(postgres_url, tmp_path):
    empty = postgres_url.rsplit("/", 1)[0] + "/fw_empty_" + tmp_path.name[-8:].replace("-", "_")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = empty.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with pytest.raises(SchemaOutOfDate, match="fadewatch db upgrade"):
            prepare_database(ServerSettings(dir=tmp_path, database_url=empty))
        cli = [sys.executable, "-m", "fadewatch.cli"]
        refused = subprocess.run([*cli, "server", "--db", empty], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "fadewatch db upgrade" in refused.stderr
        upgraded = subprocess.run([*cli, "db", "upgrade", "--db", empty], capture_output=True, text=True, timeout=120)
        assert upgraded.returncode == 0, upgraded.stderr
        assert head_revision() in upgraded.stdout
        engine = make_engine(empty)
        assert current_revision(engine) == head_revision()
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_sqlite_default_is_created_and_migrated_on_start(tmp_path):
    db = prepare_database(ServerSettings(dir=tmp_path / "fresh"))
    assert (tmp_path / "fresh" / "fadewatch.db").exists()
    assert current_revision(db.engine) == head_revision()


def test_downgrade_and_upgrade_round_trip_on_sqlite(tmp_path):
    from alembic import command

    from fadewatch.server.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'rt.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert current_revision(make_engine(url)) == head_revision()


def _fresh_database(backend: str, tmp_path, request) -> tuple[str, callable]:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}", lambda: None
    base = request.getfixturevalue("postgres_url")
    name = "fw_samples_" + tmp_path.name[-8:].replace("-", "_")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, drop


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_samples_stored_before_0005_become_searchable_rollouts(backend, tmp_path, request):
    from alembic import command

    from fadewatch.server.auth import OPEN
    from fadewatch.server.migrate import alembic_config
    from fadewatch.server.store.rollout_reads import RolloutFilter, read_page

    url, drop = _fresh_database(backend, tmp_path, request)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0004")
        engine = make_engine(url)
        samples = '[{"text": "old <b>7</b>", "group": 3, "reward": 1.0, "advantage": 0.5}, ' \
                  '{"text": "other", "group": "g", "reward": null, "advantage": -1.0}, ' \
                  '{"text": "old again", "group": 3, "reward": 0.0, "advantage": -0.5}]'
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO runs (id, project_id, name, status, created_at, updated_at, step_count) "
                              "VALUES (1, 1, 'r', 'running', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 2)"))
            conn.execute(text("INSERT INTO steps (run_id, step, time, scalars, samples) VALUES "
                              "(1, 0, 0, '{}', :samples), (1, 1, 0, '{}', NULL)"), {"samples": samples})
        command.upgrade(cfg, "head")
        db = prepare_database(ServerSettings(dir=tmp_path, database_url=url))
        with db.transaction() as session:
            page = read_page(session, 1, OPEN, RolloutFilter(), 100)
            found = read_page(session, 1, OPEN, RolloutFilter(q="OLD <B>"), 100)
        assert [(r.group, r.index, r.completion, r.advantage) for r in page.rollouts] == [
            ("3", 0, "old <b>7</b>", 0.5), ("3", 2, "old again", -0.5), ("g", 1, "other", -1.0)]
        assert [r.completion for r in found.rollouts] == ["old <b>7</b>"]
        db.engine.dispose()
        engine.dispose()
    finally:
        drop()
