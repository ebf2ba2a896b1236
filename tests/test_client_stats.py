"""log() with training data: the statistics are computed off the training thread and sent."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import fadewatch.stats as stats
from fadewatch import UsageError
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401


def _step_data(seed: int, n_groups: int = 4, g: int = 4, t: int = 6):
    rng = np.random.default_rng(seed)
    rewards = (rng.random(n_groups * g) > 0.5).astype(np.float64)
    adv = rewards - np.repeat(rewards.reshape(n_groups, g).mean(1), g)
    return {
        "advantages": torch.tensor(adv), "rewards": rewards, "group_ids": np.repeat(np.arange(n_groups), g),
        "entropy": torch.rand(n_groups * g, t, generator=torch.Generator().manual_seed(seed)),
        "mask": torch.ones(n_groups * g, t), "completions": [f"x = {i % 3}" for i in range(n_groups * g)],
    }


def test_statistics_reach_the_server(start_run, fake_server):
    run = start_run()
    for step in range(3):
        run.log(step, **_step_data(step), loss=0.1)
    assert run.flush(10)
    record = fake_server.steps[1][2]
    assert record["scalars"]["loss"] == 0.1
    assert -1.0 <= record["scalars"]["sign/balance"] <= 1.0
    assert "advantages" in record["histograms"] and record["rollouts"]
    assert run.health()["stats_errors"] == 0


def test_cpu_inputs_are_reduced_on_the_worker_thread(start_run, fake_server, monkeypatch):
    threads = []
    real = stats.reduce
    monkeypatch.setattr(stats, "reduce", lambda *a, **k: (threads.append(threading.current_thread().name), real(*a, **k))[1])
    run = start_run()
    run.log(0, **_step_data(0))
    assert run.flush(10)
    assert threads == ["fadewatch-stats"]


def test_bad_inputs_fail_in_log(start_run):
    run = start_run()
    data = _step_data(0)
    data["rewards"] = data["rewards"][:-1]  # one reward short
    with pytest.raises(UsageError):
        run.log(0, **data)
    run.log(0, **_step_data(0))  # the failed call did not use up the step


def test_failing_statistics_still_send_the_scalars(start_run, fake_server, monkeypatch):
    def broken(red):
        raise RuntimeError("bug in a statistic")

    monkeypatch.setattr(stats, "finalize", broken)
    run = start_run()
    run.log(0, **_step_data(0), loss=2.0)
    assert run.flush(10)
    assert fake_server.steps[1][0]["scalars"] == {"loss": 2.0}
    health = run.health()
    assert health["stats_errors"] == 1 and "bug in a statistic" in health["last_error"]


def test_head_geometry_every_k_steps(start_run, fake_server):
    head = torch.nn.Linear(8, 16)
    run = start_run()
    run.watch_head(head, every=2)
    for step in range(5):
        with torch.no_grad():
            head.weight.add_(0.01 * torch.randn_like(head.weight))
        run.log(step, loss=1.0)
    assert run.flush(10)
    measured = [s for s, r in sorted(fake_server.steps[1].items()) if "geometry/rank1_frac" in r["scalars"]]
    assert measured == [2, 4]
    assert 0.0 < fake_server.steps[1][4]["scalars"]["geometry/rank1_frac"] <= 1.0


def test_stats_config_must_be_a_stats_config(start_run):
    with pytest.raises(UsageError):
        start_run(stats_config={"success_threshold": 1.0})
    run = start_run(stats_config=stats.StatsConfig(success_threshold=1.0))
    run.log(0, **_step_data(0))
    assert run.flush(10)


def test_a_failing_head_measurement_never_stops_training(start_run, fake_server):
    class Exploding:
        def maybe_measure(self, step):
            raise RuntimeError("CUDA out of memory")

    run = start_run()
    run._head = Exploding()  # what HeadWatcher would do when the copy of the head does not fit
    run.log(0, loss=1.0)
    run.log(1, loss=1.0)
    assert run.flush(10)
    assert fake_server.stored_steps() == [0, 1]
    health = run.health()
    assert health["stats_errors"] == 1 and "out of memory" in health["last_error"]
