"""The verl integration against verl's real trainers, on CPU.

``RayPPOTrainer.fit()`` and the V1 ``PPOTrainer.fit()`` (sync, and separate_async with two
passes a step, on a real TransferQueue in a local Ray cluster) run for 2 steps with
``trainer.logger=[fadewatch]``; only what needs GPUs is replaced (tests.support.verl_stubs):
the rollout samples from a tiny Llama on the CPU, and the actor's entropy and
log-probabilities are a function of each token, so every logged row can be checked against
its response. The server's record and the hook's ``run.log`` calls are compared with what
verl computed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

import fadewatch
from fadewatch.integrations import verl as hook
from tests.support.polling import wait_until
from tests.support.servers import live_server, torch_threads
from tests.support.trl_checks import Stored

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory, "verl-server") as srv:
        yield srv


@pytest.fixture
def server_url(_isolated_home, server, monkeypatch):
    """verl's Tracking takes no fadewatch options: the backend reads FADEWATCH_URL, as in production."""
    from fadewatch.settings import get_settings

    monkeypatch.setenv("FADEWATCH_URL", server.url)
    get_settings.cache_clear()
    yield server.url
    get_settings.cache_clear()


@pytest.fixture
def logged(monkeypatch):
    """Every run.log call of the runs of this test: step -> its arguments."""
    calls: dict[str, dict[int, dict]] = {}
    original = fadewatch.Run.log

    def spy(run, step, **kwargs):
        calls.setdefault(run.name, {})[step] = kwargs
        return original(run, step, **kwargs)

    monkeypatch.setattr(fadewatch.Run, "log", spy)
    return calls


@pytest.fixture
def no_del(monkeypatch):
    """verl's Tracking.__del__ does nothing: the run must finish without it."""
    import verl.utils.tracking as tracking

    monkeypatch.setattr(tracking.Tracking, "__del__", lambda self: None)


def _grpo(rewards: torch.Tensor, groups: list[str]) -> torch.Tensor:
    """verl's GRPO outcome advantage of each response: (r - group mean) / (group std + 1e-6)."""
    out = torch.empty_like(rewards)
    for g in set(groups):
        idx = torch.tensor([i for i, u in enumerate(groups) if u == g])
        r = rewards[idx]
        out[idx] = (r - r.mean()) / (r.std() + 1e-6)
    return out


def _check_step(args: dict, rollouts: int, tokenizer=None) -> None:
    """One step's run.log arguments: whole groups of 4, GRPO advantages of the logged rewards,
    and entropy and log-probability rows that belong to their response."""
    from tests.support.tiny_policy import token_entropy, token_logprob

    mask = args["mask"].bool()
    groups = list(args["group_ids"])
    assert len(groups) == rollouts and set(Counter(groups).values()) == {4}
    assert args["advantages"].shape == args["entropy"].shape == args["logprobs"].shape == mask.shape
    expected = _grpo(args["rewards"].float(), groups)
    for i in range(rollouts):
        assert torch.allclose(args["advantages"][i][mask[i]], expected[i], atol=1e-5), i
        logprobs, entropy = args["logprobs"][i][mask[i]], args["entropy"][i][mask[i]]
        # the stand-in actor's values are functions of the token: recover the tokens from both
        ids = torch.tensor([next(t for t in range(64) if abs(token_logprob(t) - lp) < 1e-5
                                 and abs(token_entropy(t) - e) < 1e-5) for lp, e in zip(logprobs, entropy)])
        if tokenizer is not None:  # and they are the tokens of the logged response, decoded by its tokenizer
            assert torch.equal(args["completions"][i][mask[i]].cpu(), ids), i
            assert args["tokenizer"] is tokenizer


def _check_stored(stored: Stored, rollouts: int, tokens: dict[int, int]) -> None:
    assert stored.run["status"] == "finished"
    adv, n_groups = stored.histogram("advantages"), stored.series("difficulty/n_groups")
    assert {s: h["count"] for s, h in adv.items()} == {1: rollouts, 2: rollouts}
    assert {s: g * 4 for s, g in n_groups.items()} == {1: rollouts, 2: rollouts}
    assert {s: h["count"] for s, h in stored.histogram("entropy").items()} == tokens  # every real token
    assert sorted(stored.series("sign/balance")) == [1, 2]
    assert stored.series("actor/pg_loss") == {1: -0.25, 2: -0.25}


def test_legacy_fit_logs_each_step_and_finishes_when_fit_returns(server, server_url, logged, no_del):
    import verl.trainer.ppo.ray_trainer as ray_trainer

    from tests.support.tiny_policy import Policy
    from tests.support.verl_stubs import legacy_trainer, verl_config

    # verl loaded fadewatch as a plugin when it was imported: no setup call here
    assert ray_trainer.compute_advantage.__fadewatch__ and ray_trainer.RayPPOTrainer.fit.__fadewatch__
    policy = Policy()
    trainer = legacy_trainer(verl_config("legacy", "trainer.use_v1=false"), policy)
    trainer.fit()

    stored = Stored(server, "verl", "legacy")
    assert stored.run["status"] == "finished"  # at once: nothing else finishes the run of this fit()
    steps = logged["legacy"]
    assert sorted(steps) == [1, 2]
    for args in steps.values():
        _check_step(args, 8, policy.tokenizer)
    _check_stored(stored, 8, {s: int(a["mask"].sum()) for s, a in steps.items()})
    assert stored.run["config"]["algorithm"]["adv_estimator"] == "grpo"
    rollouts = stored.rollouts()[2]  # whole groups of 4, with the prompt and response decoded
    assert rollouts and all(r["group"] in set(steps[2]["group_ids"]) and r["group_size"] == 4 for r in rollouts)
    assert all(r["prompt"] and r["completion"] for r in rollouts)


def test_ctrl_c_in_fit_marks_the_run_failed(server, server_url, no_del):
    from tests.support.tiny_policy import Policy
    from tests.support.verl_stubs import legacy_trainer, verl_config

    trainer = legacy_trainer(verl_config("interrupted", "trainer.use_v1=false"), Policy())
    generate, calls = trainer.async_rollout_manager.generate_sequences, []

    def interrupted(batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(batch)

    trainer.async_rollout_manager.generate_sequences = interrupted
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    stored = Stored(server, "verl", "interrupted")
    assert stored.run["status"] == "failed" and stored.run["error"] == "KeyboardInterrupt"
    assert sorted(stored.histogram("advantages")) == [1]  # the step before is kept


def test_an_exception_in_fit_marks_the_run_failed(server, server_url):
    import verl.trainer.ppo.ray_trainer as ray_trainer
    import verl.utils.tracking as tracking

    logger = tracking.Tracking(project_name="verl", experiment_name="fit-fails", default_backend=["fadewatch"],
                               config={})
    bare = ray_trainer.RayPPOTrainer.__new__(ray_trainer.RayPPOTrainer)  # fit() fails on its first line
    with pytest.raises(AttributeError):
        bare.fit()
    backend = logger.logger["fadewatch"]
    assert backend.run.finished and backend.failure.startswith("AttributeError")
    assert Stored(server, "verl", "fit-fails").run["status"] == "failed"


def test_finish_from_the_runs_own_sender_thread(server, tmp_path):
    """Garbage collection may run Tracking.__del__, and so finish(), on the hook's sender thread."""
    import httpx

    real, seen = httpx.HTTPTransport(), []

    class FinishingTransport(httpx.BaseTransport):
        def handle_request(self, request):
            if request.url.path.endswith("/steps") and not seen:
                seen.append(threading.current_thread().name)
                backend.finish()  # what verl's Tracking.__del__ does
            return real.handle_request(request)

    backend = hook.FadewatchBackend("verl", "finish-on-sender", {}, url=server.url, dir=tmp_path,
                                    transport=FinishingTransport())
    backend.run.log(1, loss=0.5)
    wait_until(lambda: (server.find_run("verl", "finish-on-sender") or {}).get("status") == "finished",
               timeout=20, what="the run to be finished")
    wait_until(lambda: backend.run.finished, timeout=20, what="the finish to end on its own thread")
    assert seen == ["fadewatch-sender"]
    assert Stored(server, "verl", "finish-on-sender").series("loss") == {1: 0.5}


UNKNOWN_VERSION = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
    sys.path.insert(0, sys.argv[1])
    from fadewatch.integrations import verl as hook
    hook.installed_version = lambda dist: "0.10.0"  # a release the hook was not checked against
    hook.setup()
    hook.setup()  # idempotent, as Ray may call it for every actor in a process
    assert "verl.trainer.ppo.ray_trainer" not in sys.modules  # nothing heavy imported by the hook
    import torch
    torch.set_num_threads(1)
    from tests.support.tiny_policy import Policy
    from tests.support.verl_stubs import legacy_trainer, verl_config
    import verl.trainer.ppo.ray_trainer as rt
    assert not getattr(rt.compute_advantage, "__fadewatch__", False)  # verl's own code, unhooked
    made = []
    hook.FadewatchBackend.__init__ = lambda self, *args, **kwargs: made.append(args)
    trainer = legacy_trainer(verl_config("unknown", "trainer.use_v1=false"), Policy())
    trainer.fit()
    print("trained", trainer.global_steps, "runs", len(made))
""")


def test_a_verl_version_the_hook_does_not_know_still_trains(tmp_path):
    env = {"FADEWATCH_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "VERL_USE_EXTERNAL_PLUGINS": "none", "FADEWATCH_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", UNKNOWN_VERSION, str(REPO)], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("trained 3 runs 0")  # verl counts past its last step
    errors = [line for line in done.stdout.splitlines() if line.startswith("fadewatch ERROR")]
    assert len(errors) == 1, errors
    assert "supports verl>=0.9,<0.10, found verl 0.10.0" in errors[0]
    assert "as if fadewatch were not in the list" in errors[0]


# ---- the V1 trainer on TransferQueue, in a local Ray cluster --------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster whose workers run the setup hook (verl plugins off), and TransferQueue."""
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE",)}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    # logical CPUs: TransferQueue's two actors hold one each, the setup-hook probe needs a third
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")),
             runtime_env={"worker_process_setup_hook": "fadewatch.integrations.verl.setup",
                          "env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none", "FADEWATCH_MODE": "disabled",
                                       "PYTHONPATH": str(REPO)}})
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield ray
    tq.close()
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


V1_MODES = {
    "sync": ((), 8),
    # 4 prompts a step in 2 mini-batches: each step is two passes of 8 rollouts
    "separate_async": (("trainer.v1.separate_async.parameter_sync_step=2", "data.train_batch_size=4",
                        "actor_rollout_ref.hybrid_engine=false", "actor_rollout_ref.rollout.nnodes=1",
                        "actor_rollout_ref.rollout.n_gpus_per_node=1", "data.gen_batch_size=1",
                        "actor_rollout_ref.rollout.checkpoint_engine.backend=nccl"), 16),
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(V1_MODES))
def test_v1_fit_logs_every_pass_of_each_step(ray_cluster, server, server_url, logged, mode):
    from tests.support.tiny_policy import Policy
    from tests.support.verl_stubs import v1_trainer, verl_config

    overrides, rollouts = V1_MODES[mode]
    name = f"v1-{mode}"
    trainer, rollout = v1_trainer(verl_config(name, f"trainer.v1.trainer_mode={mode}", *overrides), Policy())
    trainer.fit(rollout)
    stored = Stored(server, "verl", name)
    assert stored.run["status"] == "finished"  # when fit() returned, before the task runner's finish()
    trainer.logger.finish(exit_code=0)  # what TaskRunnerV1 does next: nothing more to do
    steps = logged[name]
    assert sorted(steps) == [1, 2]
    for args in steps.values():
        _check_step(args, rollouts)  # V1 keeps no responses in its advantage batch: no completions
        assert "completions" not in args
    _check_stored(stored, rollouts, {s: int(a["mask"].sum()) for s, a in steps.items()})


@pytest.mark.slow
def test_ray_runs_the_setup_hook_in_its_workers(ray_cluster):
    """With verl's plugin discovery off, the Ray setup hook alone makes fadewatch a verl logger."""

    @ray_cluster.remote
    def probe():
        import os

        from verl.utils.tracking import Tracking

        t = Tracking(project_name="p", experiment_name="e", default_backend=["fadewatch"], config={})
        return os.environ["VERL_USE_EXTERNAL_PLUGINS"], type(t.logger["fadewatch"]).__name__

    assert ray_cluster.get(probe.remote(), timeout=120) == ("none", "FadewatchBackend")


def test_setup_never_breaks_verl_when_a_patch_fails(caplog, monkeypatch):
    """A hook that cannot be applied leaves verl's Tracking working, without fadewatch, said once."""
    import types

    import verl.utils.tracking as tracking

    broken = types.ModuleType("verl.trainer.ppo.ray_trainer")  # lacks what the hook wraps
    monkeypatch.setitem(sys.modules, broken.__name__, broken)
    saved = hook._disabled
    try:
        from fadewatch.integrations.common import patch_on_import

        patch_on_import({broken.__name__: lambda m: hook.patch_trainer_module(m, on_exit=None)}, hook._patch_failed)
        assert hook._disabled is not None and "could not hook verl.trainer.ppo.ray_trainer" in hook._disabled
        with caplog.at_level("ERROR", logger="fadewatch"):
            t = tracking.Tracking(project_name="p", experiment_name="e", default_backend=["console", "fadewatch"],
                                  config={})
        assert list(t.logger) == ["console"]
        assert [r.getMessage() for r in caplog.records if r.name == "fadewatch"] == [
            "fadewatch: verl's logger list names fadewatch, but it could not hook verl.trainer.ppo.ray_trainer "
            "(AttributeError(\"module 'verl.trainer.ppo.ray_trainer' has no attribute 'agg_loss'\")); verl trains "
            "as if fadewatch were not in the list"]
    finally:
        hook._disabled = saved
