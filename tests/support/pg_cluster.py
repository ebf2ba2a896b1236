"""A private PostgreSQL cluster that fault tests may stop, restart and reconfigure.

The shared cluster other tests use must never go down, so these tests make their own with
the Debian tools (pg_createcluster, pg_ctlcluster, pg_dropcluster) on a free port, with
trust authentication on loopback, and drop it at the end of the test session.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

from sqlalchemy import create_engine, text

from tests.support.servers import free_port

__all__ = ["PrivateCluster"]

VERSION = "15"


def _run(*args: str, timeout: float = 60) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")


class PrivateCluster:
    """``create()``, then ``stop()``/``start()``/``restart()`` at will, ``drop()`` at the end."""

    def __init__(self) -> None:
        self.name = f"fadewatch_faults_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.created = False

    @staticmethod
    def available() -> str | None:
        """None when the tools are installed, else what is missing."""
        missing = [tool for tool in ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster") if not shutil.which(tool)]
        return ", ".join(missing) or None

    def create(self) -> PrivateCluster:
        # --no-sync only skips initdb's final fsync: a test cluster need not survive a power cut.
        self.created = True  # from here on, drop() cleans up whatever half-made cluster exists
        _run("pg_createcluster", VERSION, self.name, "--port", str(self.port), "--start",
             "--", "--auth=trust", "--no-sync", timeout=120)
        return self

    def database(self, name: str) -> str:
        """A new database in this cluster, migrated to the current schema; its URL."""
        from fadewatch.server.db import make_engine
        from fadewatch.server.migrate import upgrade

        self.execute(f'CREATE DATABASE "{name}"')
        url = self.admin_url.rsplit("/", 1)[0] + f"/{name}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser, outside a transaction (ALTER/CREATE DATABASE)."""
        url = self.admin_url.rsplit("/", 1)[0] + f"/{database}"
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def stop(self) -> None:
        _run("pg_ctlcluster", VERSION, self.name, "stop", "--mode", "fast")

    def start(self) -> None:
        _run("pg_ctlcluster", VERSION, self.name, "start")

    def restart(self) -> None:
        _run("pg_ctlcluster", VERSION, self.name, "restart", "--mode", "fast")

    def drop(self) -> None:
        if self.created:
            _run("pg_dropcluster", "--stop", VERSION, self.name)
            self.created = False
