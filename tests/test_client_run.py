"""The public hook: init / log / flush / finish / health, modes, misuse, scalars."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import fadewatch
from fadewatch import UsageError, stats_worker
from fadewatch.settings import Settings, get_settings
from tests.support.polling import returns, wait_until
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401


def test_public_surface_is_complete():
    public = {n for n in dir(fadewatch) if not n.startswith("_") and not isinstance(getattr(fadewatch, n), type(fadewatch))}
    assert public <= set(fadewatch.__all__), public - set(fadewatch.__all__)
    for name in fadewatch.__all__:
        assert hasattr(fadewatch, name), name


def test_current_run_follows_init_and_finish(start_run):
    assert fadewatch.run is None
    run = start_run()
    assert fadewatch.run is run
    fadewatch.log(0, loss=1.0)
    assert fadewatch.finish(timeout=5)
    assert fadewatch.run is None
    assert fadewatch.finish() is True  # nothing to finish


def test_log_before_init_and_after_finish_are_usage_errors(start_run):
    with pytest.raises(UsageError, match="before fadewatch.init"):
        fadewatch.log(0, loss=1.0)
    run = start_run()
    run.finish(timeout=5)
    with pytest.raises(UsageError, match="after finish"):
        run.log(1, loss=1.0)
    with pytest.raises(UsageError):
        run.watch_head(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("step", [-1, 1.0, "3", True, None, 2**62 + 1])
def test_step_must_be_a_non_negative_int(start_run, step):
    run = start_run()
    with pytest.raises(UsageError, match="step"):
        run.log(step, loss=1.0)


def test_steps_must_increase(start_run, fake_server):
    run = start_run()
    run.log(np.int64(5), loss=1.0)  # numpy ints are ints
    with pytest.raises(UsageError, match="not after the last logged step 5"):
        run.log(5, loss=2.0)
    with pytest.raises(UsageError):
        run.log(4, loss=2.0)
    run.log(6, loss=3.0)
    assert run.flush(5)
    assert fake_server.stored_steps() == [5, 6]
    assert fake_server.steps[1][5]["scalars"] == {"loss": 1.0}


@pytest.mark.parametrize("scalars", [{"bad name!": 1.0}, {"x": "1.0"}, {"x": [1.0, 2.0]},
                                     {"x": torch.ones(3)}, {"x": np.ones(2)}, {"x": 1j}])
def test_bad_scalars_are_usage_errors(start_run, scalars):
    run = start_run()
    with pytest.raises(UsageError):
        run.log(0, **scalars)


def test_scalars_of_every_kind(start_run, fake_server):
    run = start_run()
    run.log(0, loss=torch.tensor(0.25), kl=np.float32(0.5), acc=np.array([0.75]), n=3, done=True,
            lr=torch.tensor([1e-5], dtype=torch.float64), bad=float("nan"), worse=torch.tensor(float("inf")),
            **{"train/reward mean": 1.5})
    assert run.flush(5)
    record = fake_server.steps[1][0]
    assert record["scalars"] == {"loss": 0.25, "kl": 0.5, "acc": 0.75, "n": 3.0, "done": 1.0, "lr": 1e-5,
                                 "bad": None, "worse": None, "train/reward mean": 1.5}
    assert record["nonfinite"] == ["bad", "worse"]


def test_scalars_are_read_at_log_time(start_run, fake_server):
    run = start_run()
    loss = torch.tensor(1.0)
    run.log(0, loss=loss)
    loss.fill_(2.0)  # CPU values are taken at once, so this does not change step 0
    assert run.flush(5)
    assert fake_server.steps[1][0]["scalars"]["loss"] == 1.0


def test_disabled_mode_does_nothing_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("FADEWATCH_MODE", "disabled")
    get_settings.cache_clear()
    threads = threading.active_count()
    run = fadewatch.init(project="p", name="n", dir=tmp_path / "fw")
    for step in range(10_000):
        run.log(step, loss=1.0, advantages=object())  # not even validated
    run.log(0, garbage="x")
    assert run.flush() and run.finish()
    assert threading.active_count() == threads
    assert not (tmp_path / "fw").exists()
    assert run.health()["logged"] == 0 and run.health()["mode"] == "disabled"


def test_offline_mode_writes_the_spool_only(start_run, fake_server):
    run = start_run(mode="offline", config={"lr": 1e-5, "nan": float("nan"), "path": Path("/x")})
    for step in range(12):
        run.log(step, loss=step * 1.0)
    assert run.flush(5)
    assert run.finish(5)
    assert fake_server.log == []  # no network at all
    meta = json.loads((run.spool_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["config"] == {"lr": 1e-5, "nan": None, "path": "/x"}
    lines = (run.spool_dir / "00000000.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(12))
    health = run.health()
    assert health["spooled"] == 12 and health["sent"] == 0 and health["pending"] == 12


def test_a_full_queue_drops_and_counts_without_blocking(start_run, monkeypatch, caplog):
    gate = threading.Event()
    process = stats_worker.StatsWorker._process
    monkeypatch.setattr(stats_worker.StatsWorker, "_process", lambda self, job: (gate.wait(10), process(self, job)))
    run = start_run(queue_size=5)
    # The worker is frozen: a log() that waited for room in the queue would never return.
    returns(lambda: [run.log(step, loss=1.0) for step in range(50)], what="log() with a full queue")
    health = run.health()
    assert health["logged"] == 50 and 40 <= health["dropped"] <= 45
    assert caplog.text.count("is full") == 1  # warned once, not 45 times
    gate.set()
    assert run.flush(5)
    assert run.health()["sent"] == 50 - health["dropped"]
    assert not run.finish(5)  # something was dropped


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FADEWATCH_URL", "http://example.test:9000/")
    monkeypatch.setenv("FADEWATCH_TOKEN", "t0k")
    monkeypatch.setenv("FADEWATCH_MODE", "Offline")
    monkeypatch.setenv("FADEWATCH_DIR", str(tmp_path))
    get_settings.cache_clear()
    s = get_settings()
    assert s == Settings(url="http://example.test:9000", token="t0k", mode="offline", dir=tmp_path)
    assert get_settings() is s  # cached
    assert s.with_overrides(mode="online", token=None).mode == "online"
    monkeypatch.delenv("FADEWATCH_URL")
    monkeypatch.delenv("FADEWATCH_MODE")
    get_settings.cache_clear()
    assert get_settings().url == "http://127.0.0.1:8700" and get_settings().mode == "online"


def test_bad_settings_are_usage_errors(monkeypatch):
    monkeypatch.setenv("FADEWATCH_MODE", "sometimes")
    get_settings.cache_clear()
    with pytest.raises(UsageError, match="mode"):
        fadewatch.init(project="p", name="n")
    with pytest.raises(UsageError, match="URL"):
        Settings(url="localhost:8700")


def test_bad_init_arguments_are_usage_errors(start_run):
    with pytest.raises(UsageError):
        start_run(name="two\nlines")
    with pytest.raises(UsageError):
        start_run(config=[1, 2])
    with pytest.raises(UsageError):
        start_run(queue_size=0)
    run = start_run()
    with pytest.raises(UsageError, match="status"):
        run.finish(status="done")
    with pytest.raises(UsageError):
        run.watch_head(torch.nn.Linear(2, 2), every=0)


def test_config_is_sent_when_the_run_is_created(start_run, fake_server):
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        lr: float = 1e-6
        beta: np.float32 = np.float32(0.5)

    run = start_run(config=Cfg())
    wait_until(lambda: run.id == 1, timeout=5, what="run creation")
    assert fake_server.runs[1]["config"] == {"lr": 1e-6, "beta": 0.5}


def test_default_names_are_unique(start_run):
    a = start_run(name=None, mode="offline")
    b = start_run(name=None, mode="offline")
    assert a.name != b.name and a.project == "p"


def test_health_keys(start_run):
    run = start_run()
    run.log(0, loss=math.pi)
    assert run.flush(5)
    health = run.health()
    for key in ("logged", "sent", "stored", "duplicates", "spooled", "replayed", "dropped",
                "failed_batches", "last_error", "pending", "rejected"):
        assert key in health
    assert health["logged"] == health["sent"] == health["stored"] == 1 and health["pending"] == 0
