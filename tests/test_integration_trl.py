"""fadewatch.watch() on real TRL trainers: a tiny Llama trained for a few steps on CPU.

What the server stored is compared with what TRL itself recorded for the same steps (the
rollout table it keeps for its completion logs, and its metrics), so the hook's bookkeeping (shuffled
micro-batches, reused generations, several processes) is checked against the trainer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fadewatch
from fadewatch.errors import UsageError
from tests.support.servers import LiveServer
from tests.support.tiny_trl import digit_reward, length_reward, make_trainer
from tests.support.trl_checks import Stored, TrlRecorder, load_tables

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("trl-server")).start()
    yield srv
    srv.stop()


def _assert_matches_trl(stored: Stored, tables: dict, group_size: int) -> None:
    """Per step: the advantages, rewards and rollouts stored are the ones TRL computed."""
    adv_hist, adv_mean, reward_mean = stored.histogram("advantages"), stored.series("adv/mean"), stored.series("reward/mean")
    rollouts = stored.rollouts()
    assert sorted(adv_hist) == sorted(tables)
    for step, trl in tables.items():
        n = len(trl["advantage"])
        h = adv_hist[step]
        assert h["count"] == n
        assert h["mean"] == pytest.approx(trl["advantage"].mean(), abs=1e-5)
        assert h["min"] == pytest.approx(trl["advantage"].min(), abs=1e-5)
        assert h["max"] == pytest.approx(trl["advantage"].max(), abs=1e-5)
        assert adv_mean[step] == pytest.approx(trl["advantage"].mean(), abs=1e-5)
        assert reward_mean[step] == pytest.approx(trl["reward"].mean(), abs=1e-5)
        assert rollouts[step], f"no rollouts at step {step}"
        for r in rollouts[step]:
            # whole groups, with their prompt; each rollout is a row of its group in TRL's table
            # (group ids count on across generations; TRL's table holds this step's generation)
            assert r["group_size"] == group_size and r["prompt"]
            first = (int(r["group"]) % (n // group_size)) * group_size
            rows = range(first, first + group_size)
            assert any(trl["completion"][i] == r["completion"]
                       and abs(trl["advantage"][i] - r["advantage"]) < 1e-5
                       and abs(trl["reward"][i] - r["reward"]) < 1e-5 for i in rows), (step, r)


def test_grpo_steps_match_what_trl_computed(server, tmp_path):
    """Gradient accumulation, num_iterations=2, two weighted reward functions, a KL term."""
    trainer = make_trainer(tmp_path, max_steps=4, reward_funcs=[digit_reward, length_reward],
                           reward_weights=[1.0, 0.5], gradient_accumulation_steps=2, num_iterations=2,
                           beta=0.04)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0, "length_reward": 0.5})
    watcher = fadewatch.watch(trainer, project="trl", name="grpo", url=server.url)
    assert fadewatch.run is watcher.run
    trainer.train()

    assert watcher.errors == 0 and watcher.failure is None
    assert watcher.run.finished and watcher.run.health()["stored"] == 4
    stored = Stored(server, "trl", "grpo")
    assert stored.run["status"] == "finished" and stored.run["step_count"] == 4
    config = stored.run["config"]
    assert config["trainer"] == "GRPOTrainer" and config["reward_funcs"] == ["digit_reward", "length_reward"]
    assert config["args"]["num_iterations"] == 2 and config["args"]["gradient_accumulation_steps"] == 2
    assert config["versions"]["trl"]

    _assert_matches_trl(stored, recorder.tables, 4)
    # TRL's own scalars under the names Transformers reports them, at the steps TRL has them
    # (generation metrics only where a generation happened: steps 1 and 3 with num_iterations=2)
    history = {h["step"]: h for h in trainer.state.log_history if "loss" in h}
    for key in ("loss", "kl", "grad_norm", "learning_rate", "reward_std", "frac_reward_zero_std",
                "clip_ratio/low_mean", "clip_ratio/region_mean", "rewards/length_reward/mean", "entropy"):
        series = stored.series(f"train/{key}")
        assert sorted(series) == sorted(s for s, h in history.items() if key in h), key
        for step, value in series.items():
            assert value == pytest.approx(history[step][key], rel=1e-4, abs=1e-6), (key, step)
    assert sorted(stored.series("train/reward_std")) == [1, 3]
    # the statistics of every step, and per-token entropy as a distribution
    for key in ("sign/balance", "difficulty/solve_rate", "entropy/mean", "pass@1", "diversity/distinct_1"):
        assert sorted(stored.series(key)) == [1, 2, 3, 4], key
    entropy = stored.histogram("entropy")
    lengths = stored.series("train/completions/mean_length")
    for step in (1, 2, 3, 4):  # one value per real token; steps 2 and 4 reuse the generation before
        assert entropy[step]["count"] == pytest.approx(lengths[step - (step + 1) % 2] * 8)


@pytest.mark.parametrize("trainer_kind, extra", [
    ("grpo", {"scale_rewards": "batch"}),
    ("grpo", {"scale_rewards": "none"}),
    ("grpo", {"multi_objective_aggregation": "normalize_then_sum"}),
    ("rloo", {}),
], ids=["grpo-batch", "grpo-none", "grpo-normalize_then_sum", "rloo"])
def test_every_advantage_mode(server, tmp_path, trainer_kind, extra):
    trainer = make_trainer(tmp_path, trainer=trainer_kind, max_steps=2, **extra)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0})
    name = "-".join([trainer_kind, *map(str, extra.values())])
    watcher = fadewatch.watch(trainer, project="trl-modes", name=name, url=server.url)
    trainer.train()
    assert watcher.errors == 0 and watcher.run.finished
    stored = Stored(server, "trl-modes", name)
    assert stored.run["status"] == "finished"
    _assert_matches_trl(stored, recorder.tables, 4)
    # one micro-batch per step: the token-weighted entropy equals TRL's own figure
    trl_entropy, ours = stored.series("train/entropy"), stored.series("entropy/mean")
    for step in (1, 2):
        assert ours[step] == pytest.approx(trl_entropy[step], rel=1e-5)


def test_failing_training_marks_the_run_failed(server, tmp_path):
    calls = []

    def flaky_reward(completions, **_):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("reward service went away")
        return [0.0 if i % 2 else 1.0 for i in range(len(completions))]

    trainer = make_trainer(tmp_path, max_steps=5, reward_funcs=[flaky_reward])
    watcher = fadewatch.watch(trainer, project="trl", name="fails", url=server.url)
    with pytest.raises(ValueError, match="reward service"):
        trainer.train()
    assert watcher.failure == "ValueError: reward service went away"
    assert watcher.run.finished
    stored = Stored(server, "trl", "fails")
    assert stored.run["status"] == "failed"
    assert stored.run["error"] == "ValueError: reward service went away"
    assert sorted(stored.series("adv/mean")) == [1, 2]  # the steps before the failure are kept


def test_training_goes_on_without_a_server(tmp_path):
    from tests.support.servers import free_port

    trainer = make_trainer(tmp_path, max_steps=2)
    watcher = fadewatch.watch(trainer, project="trl", name="no-server", url=f"http://127.0.0.1:{free_port()}",
                              finish_timeout=0.5)
    trainer.train()
    assert trainer.state.global_step == 2 and watcher.errors == 0
    assert watcher.run.health()["spooled"] == 2  # kept on disk for `fadewatch sync`


def test_watch_refuses_what_it_cannot_hook(tmp_path, monkeypatch):
    from fadewatch.integrations import trl as hook

    with pytest.raises(UsageError, match="GRPOTrainer or RLOOTrainer"):
        fadewatch.watch(object())
    trainer = make_trainer(tmp_path, max_steps=1)
    monkeypatch.setattr(hook, "installed_version", lambda dist: "0.29.1")
    with pytest.raises(UsageError, match=r"supports trl>=1\.0,<1\.17, found trl 0\.29\.1.*allow_untested=True"):
        fadewatch.watch(trainer, mode="disabled")
    watcher = fadewatch.watch(trainer, mode="disabled", allow_untested=True)
    with pytest.raises(UsageError, match="already watched"):
        fadewatch.watch(trainer, mode="disabled")
    watcher.detach()
    assert "_compute_loss" not in vars(trainer)
    fadewatch.watch(trainer, mode="disabled", allow_untested=True).detach()


def test_import_fadewatch_stays_light():
    script = "import sys, fadewatch; fadewatch.watch; print(sorted(m for m in ('trl', 'transformers', 'torch', 'verl') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


MULTI_PROCESS = textwrap.dedent("""
    import os, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[3])
    import fadewatch
    from tests.support.tiny_trl import make_trainer
    from tests.support.trl_checks import TrlRecorder

    trainer = make_trainer(sys.argv[1], max_steps=2)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0})
    watcher = fadewatch.watch(trainer, project="trl", name="two-processes", url=sys.argv[2])
    trainer.train()
    if trainer.accelerator.is_main_process:
        recorder.dump(sys.argv[1] + "/trl-tables.json")
    assert watcher.errors == 0, watcher.errors
    assert (watcher.run is not None) == trainer.accelerator.is_main_process
    # One write per line: the two ranks share a pipe, and print() in pieces can interleave.
    os.write(1, f"rank {trainer.accelerator.process_index} of {trainer.accelerator.num_processes}\\n".encode())
""")


@pytest.mark.slow
def test_two_processes_send_the_gathered_batch_once(server, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(MULTI_PROCESS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    from tests.support.servers import free_port

    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(script), str(tmp_path / "out"), server.url, str(REPO)],
        capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 of 2" in done.stdout and "rank 1 of 2" in done.stdout
    stored = Stored(server, "trl", "two-processes")
    assert stored.run["status"] == "finished" and stored.run["step_count"] == 2
    assert stored.run["config"]["num_processes"] == 2
    # 4 rollouts per process: each step holds all 8, in two groups, as TRL's own table does
    assert {step: h["count"] for step, h in stored.histogram("advantages").items()} == {1: 8, 2: 8}
    assert set(stored.series("difficulty/n_groups").values()) == {2.0}
    _assert_matches_trl(stored, load_tables(tmp_path / "out" / "trl-tables.json"), 4)
