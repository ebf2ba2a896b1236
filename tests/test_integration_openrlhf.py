"""The OpenRLHF integration against OpenRLHF's real experience maker and PPO step, on CPU.

OpenRLHF's ``RemoteExperienceMaker`` and ``BasePPOTrainer.train_step`` run unchanged, driven
as its PPOTrainer.fit() drives them (one ``train_step`` a global step); the model groups are
stand-ins and the rollout samples come from a tiny Llama (tests.support.openrlhf_stubs). The
hook is installed by ``setup()`` before OpenRLHF's modules are imported, as the Ray setup
hook does in the trainer's process.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import pytest
import torch

import fadewatch
from fadewatch.integrations import openrlhf as hook
from tests.support.servers import live_server, torch_threads
from tests.support.tiny_policy import Policy, token_entropy, token_logprob
from tests.support.trl_checks import Stored

PROMPTS = [[(1, 2), (3, 4)], [(0, 4), (2, 2)]]  # two steps of two prompts, 4 samples each


@pytest.fixture(scope="module")
def openrlhf():
    if importlib.util.find_spec("openrlhf") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("openrlhf is not installed: `make install` adds it (pip install --no-deps openrlhf==0.11.2)")
        pytest.skip("openrlhf is not installed (`make install` adds it)")
    from tests.support.openrlhf_stubs import import_openrlhf

    hook.setup()  # before OpenRLHF's modules are imported, as in a Ray worker
    with torch_threads(1):
        yield import_openrlhf()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory, "openrlhf-server") as srv:
        yield srv


@pytest.fixture
def watcher(_isolated_home, server, monkeypatch):
    """A fresh watcher for the trainer of this test, logging to the test server (FADEWATCH_URL)."""
    from fadewatch.settings import get_settings

    monkeypatch.setenv("FADEWATCH_URL", server.url)
    get_settings.cache_clear()
    fresh = hook.OpenRLHFWatcher()
    monkeypatch.setattr(hook, "WATCHER", fresh)
    yield fresh
    get_settings.cache_clear()


@pytest.fixture
def logged(monkeypatch):
    calls: dict[int, dict] = {}
    original = fadewatch.Run.log

    def spy(run, step, **kwargs):
        calls[step] = kwargs
        return original(run, step, **kwargs)

    monkeypatch.setattr(fadewatch.Run, "log", spy)
    return calls


def _train(openrlhf, name: str, steps: int, policy: Policy, max_steps: int | None = None):
    from tests.support.openrlhf_stubs import openrlhf_args, ppo_trainer, rollout_samples

    args = openrlhf_args("openrlhf", name)
    trainer = ppo_trainer(openrlhf, args, policy, max_steps=max_steps or steps)
    global_step, samples = 0, []
    for prompts in PROMPTS[:steps]:  # PPOTrainer.fit: one train_step per batch of rollouts
        batch = rollout_samples(openrlhf, policy, prompts, 4)
        samples.append(batch)
        _, global_step = trainer.train_step(batch, global_step)
    return trainer, samples


def test_each_train_step_is_logged_with_its_experiences(openrlhf, server, watcher, logged, caplog):
    assert openrlhf.maker.RemoteExperienceMaker.make_experience_batch.__fadewatch__
    assert openrlhf.trainer.BasePPOTrainer.train_step.__fadewatch__
    policy = Policy()
    with caplog.at_level(logging.WARNING, logger="fadewatch"):
        _, samples = _train(openrlhf, "grpo", 2, policy)
    assert sorted(logged) == [1, 2] and watcher.errors == 0
    for step, batch in zip((1, 2), samples):
        args = logged[step]
        mask = args["mask"].bool()
        assert list(args["group_ids"]) == [0, 0, 0, 0, 1, 1, 1, 1]  # index // n_samples_per_prompt
        rewards = torch.cat([s.rewards for s in batch])
        assert torch.equal(args["rewards"], rewards)  # the samples' rewards, in rollout order
        # group_norm: (r - group mean) / (group std), then the per-token KL penalty of
        # init_coef x (log pi - log ref) = 0.01 x 0.05 on every token, summed into the return
        grouped = rewards.view(2, 4)
        assert grouped.std(1).min() > 0  # something to normalise
        normed = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-9)).view(-1)
        for i, sample in enumerate(batch):
            response = sample.sequences[0, 1:][sample.action_mask[0].bool()]
            assert args["completions"][i] == policy.tokenizer.decode(response.tolist(), skip_special_tokens=True)
            assert torch.allclose(args["logprobs"][i][mask[i]], token_logprob(response).float())
            first = args["advantages"][i][mask[i]][0]
            assert first == pytest.approx(float(normed[i]) - 0.0005 * len(response), abs=1e-5)
        assert "entropy" not in args
    warnings = [r.getMessage() for r in caplog.records if "no per-token entropy" in r.getMessage()]
    assert len(warnings) == 1

    stored = Stored(server, "openrlhf", "grpo")
    assert stored.run["status"] == "finished"  # at the trainer's last step
    assert stored.run["config"]["algo"]["advantage"]["estimator"] == "group_norm"
    assert {s: h["count"] for s, h in stored.histogram("advantages").items()} == {1: 8, 2: 8}
    assert stored.series("difficulty/n_groups") == {1: 2.0, 2: 2.0}
    assert stored.series("policy_loss") == {2: -0.25}  # OpenRLHF trains the actor from global step 1
    assert sorted(stored.series("rollout/reward_mean")) == [1, 2]


def test_a_failing_step_marks_the_run_failed(openrlhf, server, watcher):
    policy = Policy()
    trainer, _ = _train(openrlhf, "fails", 1, policy, max_steps=5)
    fit = trainer.actor_model_group.async_run_method

    def broken(method_name, **kwargs):
        if method_name == "fit":
            raise RuntimeError("actor died")
        return fit(method_name, **kwargs)

    trainer.actor_model_group.async_run_method = broken
    from tests.support.openrlhf_stubs import rollout_samples

    with pytest.raises(RuntimeError, match="actor died"):
        trainer.train_step(rollout_samples(openrlhf, policy, PROMPTS[1], 4), 1)
    stored = Stored(server, "openrlhf", "fails")
    assert stored.run["status"] == "failed" and stored.run["error"] == "RuntimeError: actor died"
    assert sorted(stored.histogram("advantages")) == [1]


def test_an_entropy_the_actor_passes_is_logged(openrlhf, server, watcher, logged):
    """An experience maker whose actor returns per-token entropy sets it on its experiences."""
    policy = Policy()
    maker = openrlhf.maker.RemoteExperienceMaker
    make = maker.make_experience

    def with_entropy(self, samples_list):
        out = make(self, samples_list)
        for e in out:
            e.entropy = token_entropy(e.sequences[:, 1:]).float() * e.action_mask
        return out

    maker.make_experience = with_entropy
    try:
        _, samples = _train(openrlhf, "entropy", 1, policy)
    finally:
        maker.make_experience = make
    args = logged[1]
    mask = args["mask"].bool()
    for i, sample in enumerate(samples[0]):
        response = sample.sequences[0, 1:][sample.action_mask[0].bool()]
        assert torch.allclose(args["entropy"][i][mask[i]], token_entropy(response).float())
    stored = Stored(server, "openrlhf", "entropy")
    assert stored.histogram("entropy")[1]["count"] == int(mask.sum())
