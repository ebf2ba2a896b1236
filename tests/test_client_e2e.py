"""The hook against a real `fadewatch server` subprocess that comes, goes and gets killed.

Every scenario reads the steps back over the server's API and checks that each logged step
is stored exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import fadewatch
from tests.test_client_fakes import fresh_client_state  # noqa: F401


def _stored(live_server, project: str, name: str) -> tuple[dict, list[int]]:
    run = live_server.find_run(project, name)
    assert run is not None, f"run {project}/{name} not on the server"
    return run, live_server.stored_steps(run["id"], "loss")


def _assert_exactly(live_server, project, name, steps, status=None):
    run, stored = _stored(live_server, project, name)
    assert stored == list(steps)  # in order, none missing, none twice
    assert run["step_count"] == len(steps)
    if status:
        assert run["status"] == status
    return run


def test_server_absent_at_start_then_started(live_server, tmp_path):
    live_server.stop()
    run = fadewatch.init(project="e2e", name="late-server", url=live_server.url, dir=tmp_path)
    for step in range(40):
        run.log(step, loss=1.0 / (step + 1))
    assert not run.flush(0.2)
    assert run.health()["spooled"] == 40 and run.id is None
    live_server.start()
    for step in range(40, 80):
        run.log(step, loss=1.0 / (step + 1))
    assert run.finish(timeout=30), run.health()
    _assert_exactly(live_server, "e2e", "late-server", range(80), status="finished")
    assert run.health()["replayed"] >= 40


def test_server_killed_mid_run_and_restarted(live_server, tmp_path):
    run = fadewatch.init(project="e2e", name="server-crash", url=live_server.url, dir=tmp_path)
    for step in range(50):
        run.log(step, loss=float(step))
    assert run.flush(10)
    live_server.kill()
    for step in range(50, 100):
        run.log(step, loss=float(step))
    assert not run.flush(0.2)
    live_server.start()
    for step in range(100, 150):
        run.log(step, loss=float(step))
    assert run.finish(timeout=30), run.health()
    _assert_exactly(live_server, "e2e", "server-crash", range(150), status="finished")
    health = run.health()
    assert health["stored"] == 150 and health["duplicates"] == 0 and health["dropped"] == 0


TRAINER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import fadewatch

    url, go = sys.argv[1], Path(sys.argv[2])
    run = fadewatch.init(project="e2e", name="killed-trainer", url=url, config={"lr": 1e-6})
    for step in range(30):
        run.log(step, loss=float(step))
    assert run.flush(20), run.health()
    print("DELIVERED", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:  # the test stops the server meanwhile
        time.sleep(0.01)
    for step in range(30, 60):
        run.log(step, loss=float(step))
    run.flush(0.5)  # the server is gone: returns False, but the records are on disk
    print("FLUSHED", flush=True)
    for step in range(60, 70):
        run.log(step, loss=float(step))
    time.sleep(120)
""")


def _spawn(script: str, *args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _expect(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline().strip()
    if line != word:
        proc.kill()
        raise AssertionError(f"trainer said {line!r}, expected {word!r}: {proc.stderr.read()}")


def test_sigkilled_trainer_then_fadewatch_sync(live_server, tmp_path):
    fw_dir = tmp_path / "trainer-dir"
    env = {**os.environ, "FADEWATCH_DIR": str(fw_dir), "FADEWATCH_URL": live_server.url}
    go = tmp_path / "go"
    trainer = _spawn(TRAINER, live_server.url, str(go), env=env)
    try:
        _expect(trainer, "DELIVERED")
        live_server.kill()
        go.touch()
        _expect(trainer, "FLUSHED")
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=10)
    live_server.start()
    sync = subprocess.run([sys.executable, "-m", "fadewatch.cli", "sync", str(fw_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "killed-trainer" in sync.stdout
    run, stored = _stored(live_server, "e2e", "killed-trainer")
    # Every step before the flush is there exactly once; steps after it may have made the spool.
    assert stored[:60] == list(range(60)) and stored == list(range(len(stored))) and len(stored) <= 70
    assert run["step_count"] == len(stored)
    assert not list(fw_dir.glob("spool/*"))  # uploaded: the spool is gone
    again = subprocess.run([sys.executable, "-m", "fadewatch.cli", "sync", str(fw_dir)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and "no spooled runs" in again.stdout


CRASHING = textwrap.dedent("""
    import sys
    import fadewatch

    run = fadewatch.init(project="e2e", name=sys.argv[2], url=sys.argv[1])
    for step in range(20):
        run.log(step, loss=float(step))
    if sys.argv[2] == "crashing":
        raise RuntimeError("training blew up")
""")


def test_runs_left_open_are_finished_at_exit(live_server, tmp_path):
    env = {**os.environ, "FADEWATCH_DIR": str(tmp_path / "dir")}
    procs = [_spawn(CRASHING, live_server.url, name, env=env) for name in ("crashing", "ending")]
    for proc in procs:
        proc.wait(timeout=60)
    assert procs[0].returncode == 1 and "training blew up" in procs[0].stderr.read()
    assert procs[1].returncode == 0, procs[1].stderr.read()
    crashed = _assert_exactly(live_server, "e2e", "crashing", range(20), status="failed")
    assert crashed["error"] == "RuntimeError: training blew up"
    ended = _assert_exactly(live_server, "e2e", "ending", range(20), status="finished")
    assert ended["error"] is None
    assert not list(Path(tmp_path / "dir").glob("spool/*"))



def test_statistics_records_are_accepted_by_the_server(live_server, tmp_path):
    import numpy as np
    import torch

    run = fadewatch.init(project="e2e", name="stats", url=live_server.url, dir=tmp_path)
    rng = np.random.default_rng(0)
    for step in range(5):
        rewards = (rng.random(32) > 0.4).astype(np.float64)
        adv = rewards - np.repeat(rewards.reshape(8, 4).mean(1), 4)
        run.log(step, advantages=torch.tensor(adv), rewards=rewards, group_ids=np.repeat(np.arange(8), 4),
                entropy=torch.rand(32, 12), logprobs=-torch.rand(32, 12), mask=torch.ones(32, 12),
                completions=[f"answer {i % 5}" for i in range(32)], loss=float(step))
    assert run.finish(timeout=30), run.health()
    _assert_exactly(live_server, "e2e", "stats", range(5), status="finished")
    with live_server.client() as c:
        r = c.get(f"/runs/{live_server.find_run('e2e', 'stats')['id']}/histograms", params={"name": "advantages"})
        assert r.status_code == 200, r.text
