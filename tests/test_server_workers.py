"""`fadewatch server --workers N`: processes sharing one port, on PostgreSQL only."""

from __future__ import annotations

import subprocess
import sys
import uuid

from tests.support.records import batch
from tests.support.servers import LiveServer


def test_workers_are_refused_on_sqlite(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fadewatch.cli", "server", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--workers", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "--workers above 1 needs PostgreSQL" in proc.stderr


def test_two_workers_store_every_step_once(tmp_path, postgres_url):
    server = LiveServer(tmp_path, db_url=postgres_url, args=["--workers", "2"])
    # Each worker imports the whole app before it answers: slower than one process to start.
    server.start(timeout=180)
    try:
        with server.client() as api:
            run_id = api.post("/runs", json={"project": "workers", "name": uuid.uuid4().hex}).json()["id"]
            answers = [api.post(f"/runs/{run_id}/steps", json=batch(range(start, start + 50))).json()
                       for start in (0, 50, 100, 50)]  # the last one repeats: nothing new is stored
            run = api.get(f"/runs/{run_id}").json()
        assert [a["stored"] for a in answers] == [50, 50, 50, 0]
        assert run["step_count"] == 150 and run["last_step"] == 149
        assert server.stored_steps(run_id, "loss") == list(range(150))
    finally:
        # The parent stops its workers on SIGTERM; a SIGKILL would leave them running.
        server.proc.terminate()
        server.proc.wait(timeout=120)


def test_a_serving_process_keeps_what_exists_at_start_out_of_the_collectors_passes(make_settings, tmp_path):
    """What the app is made of lives as long as the process: frozen (gc.freeze) while it serves,
    so the collector's full passes skip it; given back when it stops."""
    import gc

    from fadewatch.server.app import create_app, prepare_database
    from tests.support.servers import ThreadedServer

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'gc.db'}")
    server = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    try:
        assert gc.get_freeze_count() > 10_000  # the app, its routes, the libraries' modules
    finally:
        server.stop()
    assert gc.get_freeze_count() == 0
