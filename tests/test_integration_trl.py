"""fadewatch.watch() on real TRL trainers: a tiny Llama trained for a few steps on CPU.

What the server stored is compared with what TRL itself recorded for the same steps (the
rollout table it keeps for its completion logs, and its metrics), and what the hook logged
with what the loss trained on, in every way TRL batches its rollouts (gradient accumulation,
steps_per_generation, generation_batch_size, num_iterations, several processes): every
record holds whole groups, and its advantages are the loss's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fadewatch
from fadewatch.errors import UsageError
from tests.support.servers import live_server, torch_threads
from tests.support.tiny_trl import digit_reward, length_reward, make_trainer
from tests.support.trl_checks import Stored, TrlRecorder, load_tables
from tests.support.trl_spies import LogSpy, LossSpy, check_records, loo_advantages, rows_of

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory, "trl-server") as srv:
        yield srv


def _assert_matches_trl(stored: Stored, tables: dict, group_size: int, steps=None) -> None:
    """Per step (``steps``, or every step with rollouts): the advantages, rewards and rollouts
    stored are the ones TRL computed."""
    adv_hist, adv_mean, reward_mean = stored.histogram("advantages"), stored.series("adv/mean"), stored.series("reward/mean")
    rollouts = stored.rollouts()
    assert adv_hist and set(adv_hist) <= set(tables)
    for step in steps or adv_hist:  # a step that completes a generation: TRL's table holds that generation
        trl = tables[step]
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
    loss = LossSpy(trainer)
    watcher = fadewatch.watch(trainer, project="trl", name="grpo", url=server.url)
    assert fadewatch.run is watcher.run
    logged = LogSpy(watcher.run)
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
    check_records(logged.records(), loss, 4, stored)
    # each optimizer step is one whole pass over a generation; steps 2 and 4 are its second pass
    assert stored.series("rollouts/pass") == {1: 0, 2: 1, 3: 0, 4: 1}
    assert stored.series("rollouts/generation") == {1: 0, 2: 0, 3: 1, 4: 1}
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
], ids=["grpo-batch", "grpo-none", "grpo-normalize_then_sum"])
def test_every_advantage_mode(server, tmp_path, trainer_kind, extra):
    trainer = make_trainer(tmp_path, trainer=trainer_kind, max_steps=2, **extra)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0})
    loss = LossSpy(trainer)
    name = "-".join([trainer_kind, *map(str, extra.values())])
    watcher = fadewatch.watch(trainer, project="trl-modes", name=name, url=server.url)
    logged = LogSpy(watcher.run)
    trainer.train()
    assert watcher.errors == 0 and watcher.run.finished
    stored = Stored(server, "trl-modes", name)
    assert stored.run["status"] == "finished"
    check_records(logged.records(), loss, 4, stored)
    _assert_matches_trl(stored, recorder.tables, 4)
    # one micro-batch per step: the token-weighted entropy equals TRL's own figure
    trl_entropy, ours = stored.series("train/entropy"), stored.series("entropy/mean")
    for step in (1, 2):
        assert ours[step] == pytest.approx(trl_entropy[step], rel=1e-5)


# name: (trainer config, steps, the steps whose records hold whole generation passes)
BATCHING = {
    # one optimizer step trains half a generation: a record every second step; the fifth step
    # ends training in the middle of a generation, so only its whole groups could be logged
    "steps_per_generation=2": (dict(steps_per_generation=2), 5, {2: 8, 4: 8}),
    # 16 rollouts a generation, 8 a step, each generation trained twice: passes at 2 and 4
    "generation_batch_size=16,ga=2,num_iterations=2": (
        dict(generation_batch_size=16, gradient_accumulation_steps=2, num_iterations=2), 4, {2: 16, 4: 16}),
    # a generation per micro-batch, two micro-batches a step: two generations in each record
    "generation_batch_size=4,ga=2": (dict(generation_batch_size=4, gradient_accumulation_steps=2), 2, {1: 8, 2: 8}),
}


@pytest.mark.parametrize("label", list(BATCHING))
def test_records_hold_whole_groups_in_every_batching_mode(server, tmp_path, label, caplog):
    config, steps, whole = BATCHING[label]
    trainer = make_trainer(tmp_path, max_steps=steps, reward_funcs=[digit_reward, length_reward],
                           reward_weights=[1.0, 0.5], **config)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0, "length_reward": 0.5})
    loss = LossSpy(trainer)
    watcher = fadewatch.watch(trainer, project="trl-batching", name=label, url=server.url)
    logged = LogSpy(watcher.run)
    with caplog.at_level(logging.WARNING, logger="fadewatch"):
        trainer.train()
    assert watcher.errors == 0 and watcher.missing == set()
    stored = Stored(server, "trl-batching", label)
    records = logged.records()
    check_records(records, loss, 4, stored)  # difficulty/n_groups x 4 = rollouts logged, at every step
    assert {s: len(r["group_ids"]) for s, r in records.items() if s in whole} == whole
    # every rollout trained on is logged once per pass, except the partial groups at the end
    assert sum(len(r["group_ids"]) for r in records.values()) + watcher.dropped == sum(loss.trained.values())
    assert (watcher.dropped > 0) == any("were not logged" in r.getMessage() for r in caplog.records)
    for step, record in records.items():  # rewards are TRL's weighted sum, row by row
        generation = int(record["rollouts/generation"])
        table = recorder.tables[step]
        size = len(table["reward"])
        first = generation * size if step in whole and len(record["group_ids"]) == size else None
        if first is not None:
            rows = [r - first for r in rows_of(record, 4)]
            np.testing.assert_allclose(record["rewards"], table["reward"][rows], atol=1e-6)
            assert record["completions"] == [str(c) for c in table["completion"][rows]]
    if "num_iterations=2" in label:  # the second pass: the same rollouts and advantages again
        assert stored.series("rollouts/pass") == {2: 0, 4: 1}
        np.testing.assert_array_equal(records[2]["advantages"], records[4]["advantages"])


def test_rloo_logs_the_rewards_its_advantages_came_from(server, tmp_path):
    """RLOO clips its rewards and subtracts a KL penalty before the leave-one-out baseline."""
    trainer = make_trainer(tmp_path, trainer="rloo", max_steps=3, beta=0.5, reward_clip_range=(0.0, 0.4))
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0})
    loss = LossSpy(trainer)
    watcher = fadewatch.watch(trainer, project="trl", name="rloo", url=server.url)
    logged = LogSpy(watcher.run)
    trainer.train()
    assert watcher.errors == 0 and watcher.missing == set()
    records = logged.records()
    check_records(records, loss, 4, Stored(server, "trl", "rloo"))
    raw_differs = False
    for step, record in records.items():
        np.testing.assert_allclose(record["advantages"], loo_advantages(record["rewards"], 4), atol=1e-5)
        raw = recorder.tables[step]["reward"]
        raw_differs |= not np.allclose(record["rewards"], raw, atol=1e-6)
    assert raw_differs  # the scores TRL reports are not what the advantages came from


class _LossWithoutEntropy:
    """A GRPO subclass with a loss of its own that never asks TRL for the entropy."""

    def _compute_loss(self, model, inputs):
        import torch

        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, ids, attention, inputs["completion_ids"].size(1))
        return -((logps * inputs["completion_mask"]).sum(1) * inputs["advantages"]).mean()


def test_a_part_the_trainer_does_not_give_is_named_once(server, tmp_path, caplog):
    import trl

    subclass = type("ReinforceTrainer", (_LossWithoutEntropy, trl.GRPOTrainer), {})
    trainer = make_trainer(tmp_path, max_steps=2, trainer_class=subclass)
    loss = LossSpy(trainer)
    watcher = fadewatch.watch(trainer, project="trl", name="no-entropy", url=server.url)
    logged = LogSpy(watcher.run)
    with caplog.at_level(logging.WARNING, logger="fadewatch"):
        trainer.train()
    assert watcher.errors == 0 and watcher.missing == {"entropy"}
    warnings = [r.getMessage() for r in caplog.records if "no per-token entropy" in r.getMessage()]
    assert len(warnings) == 1 and "ReinforceTrainer" in warnings[0]
    records = logged.records()
    assert sorted(records) == [1, 2] and all("entropy" not in r and "logprobs" in r for r in records.values())
    for record in records.values():  # the rest is logged, in whole groups
        assert set(np.bincount(record["group_ids"])[np.unique(record["group_ids"])]) == {4}
        np.testing.assert_allclose(record["advantages"], [loss.rollouts[r][0] for r in rows_of(record, 4)])
    stored = Stored(server, "trl", "no-entropy")
    assert sorted(stored.series("sign/balance")) == [1, 2] and stored.histogram("entropy") == {}


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
    from tests.support.trl_spies import LogSpy, LossSpy

    out = sys.argv[1]
    # 4 rollouts a step on each process, a generation every second step: 16 rollouts in 4 groups
    trainer = make_trainer(out, max_steps=4, steps_per_generation=2)
    recorder = TrlRecorder(trainer, {"digit_reward": 1.0})
    loss = LossSpy(trainer)
    watcher = fadewatch.watch(trainer, project="trl", name="two-processes", url=sys.argv[2])
    rank = trainer.accelerator.process_index
    if watcher.run is not None:
        logged = LogSpy(watcher.run)
    if rank == 1:  # at step 3 this process fails to pack its rollouts: no process may be left waiting
        from fadewatch.integrations import trl_gather

        pack = trl_gather._Plan.pack

        def failing_pack(plan, *args):
            if trainer.state.global_step == 3:
                raise MemoryError("no room for the rollouts")
            return pack(plan, *args)

        trl_gather._Plan.pack = failing_pack
    trainer.train()
    loss.dump(f"{out}/loss-{rank}.json")
    if trainer.accelerator.is_main_process:
        recorder.dump(out + "/trl-tables.json")
        logged.dump(out + "/logged.json")
        open(out + "/dropped", "w").write(str(watcher.dropped))
    assert watcher.errors == rank, watcher.errors
    assert (watcher.run is not None) == trainer.accelerator.is_main_process
    # As a training script should: a process group left to the interpreter's exit may abort
    # there (a C++ thread still joinable: "terminate called without an active exception").
    import torch.distributed

    torch.distributed.destroy_process_group()
    # One write per line: the two ranks share a pipe, and print() in pieces can interleave.
    os.write(1, f"rank {rank} of {trainer.accelerator.num_processes}\\n".encode())
""")


@pytest.mark.slow
def test_two_processes_send_whole_groups_to_the_main_process(server, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(MULTI_PROCESS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    from tests.support.servers import free_port

    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(script), str(out), server.url, str(REPO)],
        capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 of 2" in done.stdout and "rank 1 of 2" in done.stdout
    stored = Stored(server, "trl", "two-processes")
    assert stored.run["status"] == "finished" and stored.run["step_count"] == 4
    assert stored.run["config"]["num_processes"] == 2
    # each process trained on its own 8 rollouts; the record of step 2 holds all 16, in 4 groups
    loss = LossSpy.load(out / "loss-0.json", out / "loss-1.json")
    assert len(loss.rollouts) == 32
    records = LogSpy.load(out / "logged.json")
    check_records(records, loss, 4, stored)
    assert stored.series("difficulty/n_groups")[2] == 4.0 and len(records[2]["group_ids"]) == 16
    _assert_matches_trl(stored, load_tables(out / "trl-tables.json"), 4, steps=[2])
    # step 3 reached the main process from neither process; of step 4's 8 rollouts, the whole
    # groups were logged at the end of training and the others counted as dropped
    assert set(records) <= {2, 4}
    assert len(records.get(4, {"group_ids": []})["group_ids"]) + int((out / "dropped").read_text()) == 8
