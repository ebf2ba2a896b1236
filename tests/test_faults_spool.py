"""The spool folder cannot be created (its parent is a regular file, which stops root too).

The hook never raises and never holds up training: records stay in memory, the server
still gets them, and once memory's limit is reached every dropped step is counted, warned
about, and summed up when the run finishes.
"""

from __future__ import annotations

import logging
import threading

import pytest

import fadewatch
from fadewatch import stats_worker
from fadewatch.spool.files import MAX_MEMORY_RECORDS
from tests.support.polling import returns
from tests.support.servers import ThreadedServer, free_port
from tests.support.trainers import stored_once


@pytest.fixture
def unwritable_dir(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the spool's parent folder should be")
    return blocker / "fadewatch"


@pytest.fixture
def app(make_settings, tmp_path):
    from fadewatch.server.app import create_app

    return create_app(make_settings(database_url=f"sqlite:///{tmp_path / 'server.db'}"))


def _log(run, steps) -> None:
    """Log ``steps`` from the training thread; the statistics worker is frozen meanwhile.

    With the worker held (it would be the one writing the spool), a log() that waited on the
    spool, the disk or the worker would never return: ``returns`` tells that from slowness.
    """
    gate = threading.Event()
    process = stats_worker.StatsWorker._process
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stats_worker.StatsWorker, "_process", lambda self, job: (gate.wait(60), process(self, job)))
        try:
            returns(lambda: [run.log(step, loss=float(step)) for step in steps], what="log() with the spool stalled")
        finally:
            gate.set()


def test_unwritable_spool_still_delivers_over_the_network(app, unwritable_dir, caplog):
    server = ThreadedServer(app).start()
    try:
        run = fadewatch.init(project="faults-spool", name="online", url=server.url, dir=unwritable_dir)
        assert "keeping records in memory" in caplog.text
        _log(run, range(300))
        assert run.finish(timeout=30), run.health()
        assert stored_once(server.url, "faults-spool", "online") == list(range(300))
        health = run.health()
        assert health["stored"] == 300 and health["dropped"] == 0
        assert "cannot write the spool" in health["last_error"]
        assert not unwritable_dir.exists()
    finally:
        server.stop()


def test_unwritable_spool_and_no_server_drops_past_the_memory_limit_and_says_so(app, unwritable_dir, caplog):
    caplog.set_level(logging.WARNING, logger="fadewatch")
    port = free_port()
    total = MAX_MEMORY_RECORDS + 500
    run = fadewatch.init(project="faults-spool", name="offline-memory", url=f"http://127.0.0.1:{port}",
                         dir=unwritable_dir, queue_size=total)
    _log(run, range(total))  # nobody listens yet: everything waits in memory
    assert not run.flush(timeout=5)
    health = run.health()
    assert health["dropped"] == total - MAX_MEMORY_RECORDS and health["logged"] == total
    assert "step 10000 dropped (1 dropped so far)" in caplog.text
    assert "records are kept in memory (the spool folder" in caplog.text

    server = ThreadedServer(app, port=port).start()
    try:
        assert not run.finish(timeout=30)  # False: steps were dropped
        health = run.health()
        assert health["stored"] == MAX_MEMORY_RECORDS and health["pending"] == 0, health
        assert stored_once(server.url, "faults-spool", "offline-memory") == list(range(MAX_MEMORY_RECORDS))
        assert f"dropped {total - MAX_MEMORY_RECORDS} of {total} logged step(s)" in caplog.text
    finally:
        server.stop()
