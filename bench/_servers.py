"""Shared by the benchmarks: a server subprocess on a free port and a scratch PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scratch_postgres(admin_url: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(admin_url or os.environ.get("FADEWATCH_TEST_DATABASE_URL", DEFAULT_PG))
    name = f"fadewatch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def fadewatch_server(db_url: str, data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[str]:
    """`fadewatch server` (extra FADEWATCH_* settings in `env`, `--workers`); yields its base URL."""
    with fadewatch_process(db_url, data_dir, env, workers=workers) as (url, _proc):
        yield url


@contextlib.contextmanager
def fadewatch_process(db_url: str, data_dir: Path, env: dict[str, str] | None = None,
                      log: Path | None = None, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen]]:
    """As fadewatch_server, and the process too (for benchmarks that watch its memory); its
    warnings and errors go to `log` when given."""
    cli = [sys.executable, "-m", "fadewatch.cli"]
    if not db_url.startswith("sqlite"):
        subprocess.run([*cli, "db", "upgrade", "--db", db_url], check=True, capture_output=True)
    port = free_port()
    env = {**os.environ, "FADEWATCH_DIR": str(data_dir), **(env or {})}
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [*cli, "server", "--port", str(port), "--db", db_url, "--log-level", "warning", "--workers", str(workers)],
        env=env, stdout=output, stderr=subprocess.STDOUT,
    )
    if log:
        output.close()
    url = f"http://127.0.0.1:{port}"
    # Worker processes import the whole app each: minutes on a busy machine.
    deadline = time.monotonic() + 60 * workers
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fadewatch server did not start")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
