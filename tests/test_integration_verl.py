"""The verl integration against verl's real code, on CPU.

verl's trainers need GPUs and a rollout engine, so ``fit()`` is not run whole. Each test
replays one step of its driver loop instead, with verl's own functions through the patched
module globals, in the order ``fit()`` calls them: ``agg_loss`` on the per-token entropy of
the old-policy pass, the advantage function (``compute_advantage`` of the legacy
``RayPPOTrainer``, ``compute_advantage_for_multi_trajectories`` of the V1 ``PPOTrainer``),
then a real ``Tracking`` with the ``fadewatch`` backend logs verl's metrics and finishes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fadewatch.integrations import verl as hook
from tests.support.servers import LiveServer
from tests.support.trl_checks import Stored


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("verl-server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def server_url(_isolated_home, server, monkeypatch):
    """verl's Tracking takes no fadewatch options: the backend reads FADEWATCH_URL, as in production."""
    from fadewatch.settings import get_settings

    monkeypatch.setenv("FADEWATCH_URL", server.url)
    get_settings.cache_clear()
    yield server.url
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def verl_modules():
    hook.setup()
    import verl.trainer.ppo.ray_trainer as ray_trainer
    import verl.trainer.ppo.v1.trainer_base as trainer_base
    import verl.utils.tracking as tracking

    return ray_trainer, trainer_base, tracking


def _rollouts(seed: int = 0):
    """8 responses to 2 prompts (uid groups of 4), rewards on the last real token."""
    from verl import DataProto

    g = torch.Generator().manual_seed(seed)
    n, width = 8, 6
    lengths = torch.randint(2, width + 1, (n,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    scores = torch.zeros(n, width)
    scores[torch.arange(n), lengths - 1] = reward
    data = DataProto.from_dict(
        tensors={"responses": torch.randint(3, 50, (n, width), generator=g), "response_mask": mask,
                 "token_level_scores": scores, "token_level_rewards": scores.clone(),
                 "old_log_probs": -torch.rand(n, width, generator=g)},
        non_tensors={"uid": np.array(["p0"] * 4 + ["p1"] * 4, dtype=object)})
    entropy = torch.rand(n, width, generator=g) * 3
    return data, entropy, reward


def _tracking(tracking, server, name):
    config = {"trainer": {"project_name": "verl", "experiment_name": name}, "algorithm": {"adv_estimator": "grpo"}}
    return tracking.Tracking(project_name="verl", experiment_name=name, default_backend=["console", "fadewatch"],
                             config=config)


def _assert_step_stored(stored: Stored, step: int, advantages: torch.Tensor, mask: torch.Tensor,
                        reward: torch.Tensor, entropy: torch.Tensor) -> None:
    per_rollout = (advantages * mask).sum(1) / mask.sum(1)
    h = stored.histogram("advantages")[step]
    assert h["count"] == 8
    assert h["mean"] == pytest.approx(per_rollout.mean().item(), abs=1e-5)
    assert h["min"] == pytest.approx(per_rollout.min().item(), abs=1e-5)
    assert h["max"] == pytest.approx(per_rollout.max().item(), abs=1e-5)
    assert stored.series("reward/mean")[step] == pytest.approx(reward.mean().item())
    assert stored.series("difficulty/n_groups")[step] == 2
    assert stored.series("difficulty/solve_rate")[step] == pytest.approx(0.5)  # p0: 3/4, p1: 1/4
    e = stored.histogram("entropy")[step]
    assert e["count"] == mask.sum().item()  # every real token, not only the mean
    assert e["mean"] == pytest.approx((entropy * mask).sum().item() / mask.sum().item(), rel=1e-5)


def test_legacy_trainer_step(server, server_url, verl_modules):
    ray_trainer, _, tracking = verl_modules
    logger = _tracking(tracking, server, "legacy")
    data, entropy, reward = _rollouts()
    mask = data.batch["response_mask"]
    # fit(): the entropy metric, then the advantages, then the step's metrics
    ray_trainer.agg_loss(loss_mat=entropy, loss_mask=mask, loss_agg_mode="token-mean")
    data = ray_trainer.compute_advantage(data, adv_estimator="grpo", num_repeat=4, norm_adv_by_std_in_grpo=True)
    logger.log(data={"actor/entropy": 1.5, "critic/score/mean": 0.5, "actor/pg_loss": -0.1,
                     "response_length/mean": 4.0, "timing_s/step": 12.5, "training/global_step": 1}, step=1)
    logger.finish(exit_code=0)

    stored = Stored(server, "verl", "legacy")
    assert stored.run["status"] == "finished" and stored.run["config"]["algorithm"]["adv_estimator"] == "grpo"
    _assert_step_stored(stored, 1, data.batch["advantages"], mask, reward, entropy)
    assert stored.series("actor/pg_loss")[1] == pytest.approx(-0.1)
    assert stored.series("timing_s/step")[1] == pytest.approx(12.5)
    rollouts = stored.rollouts()[1]
    assert rollouts and all(r["group"] in ("p0", "p1") and r["group_size"] == 4 for r in rollouts)


def test_v1_trainer_step_and_failure(server, server_url, verl_modules):
    _, trainer_base, tracking = verl_modules
    logger = _tracking(tracking, server, "v1")
    # validation before training logs metrics alone at step 0
    logger.log(data={"val-core/gsm8k/reward/mean@1": 0.25}, step=0)
    data, entropy, reward = _rollouts(seed=1)
    mask = data.batch["response_mask"]
    trainer_base.agg_loss(loss_mat=entropy, loss_mask=mask, loss_agg_mode="token-mean")
    # TransferQueue keys: {uid}_{session}_{turn}; one session per response here
    keys = [f"{uid}-{i}_0_0" for i, uid in enumerate(data.non_tensor_batch["uid"])]
    data = trainer_base.compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator="grpo", num_repeat=4, norm_adv_by_std_in_grpo=True)
    logger.log(data={"actor/entropy": 1.2, "critic/score/mean": 0.5}, step=1)
    # TaskRunnerV1.run finishes the trackers in a `finally` while the error propagates
    with pytest.raises(RuntimeError, match="rollout worker died"):
        try:
            raise RuntimeError("rollout worker died")
        finally:
            logger.finish(exit_code=1)

    stored = Stored(server, "verl", "v1")
    assert stored.run["status"] == "failed"
    assert stored.run["error"] == "RuntimeError: rollout worker died"
    assert logger.logger["fadewatch"].failure == "RuntimeError: rollout worker died"
    assert stored.series("val-core/gsm8k/reward/mean@1") == {0: 0.25}
    _assert_step_stored(stored, 1, data.batch["advantages"], mask, reward, entropy)


def test_an_exception_in_fit_marks_the_run_failed(server, server_url, verl_modules):
    ray_trainer, _, tracking = verl_modules
    logger = _tracking(tracking, server, "fit-fails")
    bare = ray_trainer.RayPPOTrainer.__new__(ray_trainer.RayPPOTrainer)  # fit() fails on its first line
    with pytest.raises(AttributeError):
        bare.fit()
    backend = logger.logger["fadewatch"]
    assert backend.run.finished and backend.failure.startswith("AttributeError")
    assert Stored(server, "verl", "fit-fails").run["status"] == "failed"


SETUP_IN_FRESH_PROCESS = textwrap.dedent("""
    import sys
    from fadewatch.integrations.verl import setup
    setup()
    setup()  # idempotent, as Ray may call it for every actor in a process
    assert "verl.trainer.ppo.ray_trainer" not in sys.modules  # nothing heavy imported by the hook
    from verl.utils.tracking import Tracking
    import verl.trainer.ppo.ray_trainer as rt
    assert "fadewatch" in Tracking.supported_backend
    assert rt.compute_advantage.__fadewatch__ and rt.agg_loss.__fadewatch__ and rt.RayPPOTrainer.fit.__fadewatch__
    t = Tracking(project_name="p", experiment_name="e", default_backend="fadewatch", config={})
    assert list(t.logger) == ["fadewatch"] and t.logger["fadewatch"].run.mode == "disabled"
    t.finish()
    print("hooked")
""")


def test_setup_hook_patches_modules_when_they_are_imported(tmp_path):
    env = {"FADEWATCH_MODE": "disabled", "FADEWATCH_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", SETUP_IN_FRESH_PROCESS], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("hooked")


RAY_WORKER = textwrap.dedent("""
    import ray
    # what verl's run_ppo passes to ray.init with
    # +ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=fadewatch.integrations.verl.setup
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "fadewatch.integrations.verl.setup",
                          "env_vars": {"FADEWATCH_MODE": "disabled"}})

    @ray.remote
    def probe():
        from verl.utils.tracking import Tracking
        t = Tracking(project_name="p", experiment_name="e", default_backend=["fadewatch"], config={})
        return type(t.logger["fadewatch"]).__name__

    print(ray.get(probe.remote()))
    ray.shutdown()
""")


@pytest.mark.slow
def test_ray_runs_the_setup_hook_in_its_workers(tmp_path):
    env = {"FADEWATCH_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", RAY_WORKER], capture_output=True, text=True, timeout=240,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "FadewatchBackend"
