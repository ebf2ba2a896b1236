"""The hook's rollouts: whole groups chosen by |A| mass, sign and difficulty, decoded, within budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fadewatch.stats.pipeline as pipeline
from fadewatch import RolloutConfig, UsageError
from fadewatch.rollouts import RunBudget
from fadewatch.rollouts.fill import rollout_bytes
from fadewatch.stats import StatsConfig, compute
from fadewatch.stats.backend import TorchOps
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401

G = 4
# Solve rates of 12 groups: several difficulty bins, and two groups with no signal.
SOLVED = [0, 1, 2, 3, 4, 4, 1, 3, 2, 0, 2, 1]


def _batch(words: int = 3):
    """12 groups of 4; group 5 has much larger advantages than any other (the most |A| mass)."""
    rewards = np.array([[1.0 if i < s else 0.0 for i in range(G)] for s in SOLVED]).reshape(-1)
    adv = rewards - np.repeat(rewards.reshape(-1, G).mean(1), G)
    adv[5 * G:6 * G] = [3.0, -3.0, 2.0, -2.0]
    gid = np.repeat([f"q{k}" for k in range(len(SOLVED))], G)
    texts = [f"answer {i} " + "word " * words for i in range(len(rewards))]
    prompts = [f"prompt of q{k}" for k in range(len(SOLVED))]
    return dict(advantages=adv, rewards=rewards, group_ids=gid, completions=texts), prompts


class CharTokenizer:
    """A Hugging Face-like tokenizer: id i is the character chr(96 + i); 0 is padding (special)."""

    def batch_decode(self, rows, skip_special_tokens=False):
        return ["".join("" if t == 0 and skip_special_tokens else chr(96 + t) if t else "<pad>" for t in row)
                for row in rows]


def _groups(stats) -> dict:
    return {g["group"]: g for g in stats.rollouts}


def test_whole_groups_most_mass_first_then_each_sign_and_difficulty():
    kw, prompts = _batch()
    s = compute(**kw, prompts=np.repeat(prompts, G).tolist(), rollouts=RolloutConfig(groups=6))
    assert s.rollouts[0]["group"] == "q5"  # the most |A| mass
    assert [c["advantage"] for c in s.rollouts[0]["completions"]] == [3.0, -3.0, 2.0, -2.0]
    for group in s.rollouts:
        k = int(group["group"][1:])
        assert group["prompt"] == f"prompt of q{k}" and group["solve_rate"] == SOLVED[k] / G
        assert [c["text"] for c in group["completions"]] == kw["completions"][k * G:(k + 1) * G]
        assert [c["reward"] for c in group["completions"]] == kw["rewards"][k * G:(k + 1) * G].tolist()
    signs = {("mixed" if 0 < SOLVED[int(g["group"][1:])] < G else "zero") for g in s.rollouts}
    assert signs == {"mixed", "zero"}
    assert len({SOLVED[int(g["group"][1:])] for g in s.rollouts}) >= 4  # spread over difficulty bins
    # One prompt per group (in the order groups first appear) gives the same rollouts.
    assert compute(**kw, prompts=prompts, rollouts=RolloutConfig(groups=6)).rollouts == s.rollouts
    # Without group ids every rollout is a group of its own.
    single = compute(advantages=kw["advantages"], completions=kw["completions"]).rollouts
    assert all(len(g["completions"]) == 1 for g in single) and {g["group"] for g in single} <= set(range(48))


def test_token_ids_decode_alike_from_numpy_lists_and_torch(monkeypatch):
    kw, _ = _batch()
    rng = np.random.default_rng(0)
    n, t = 48, 7
    lengths = rng.integers(2, t + 1, n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    ids = np.where(mask, rng.integers(1, 27, (n, t)), 0)
    entropy, logprobs = rng.random((n, t)), -rng.random((n, t))
    prompt_ids = rng.integers(1, 27, (12, 5))
    common = dict(advantages=kw["advantages"], rewards=kw["rewards"], group_ids=kw["group_ids"], prompts=prompt_ids,
                  tokenizer=CharTokenizer(), rollouts=RolloutConfig(groups=4, token_detail=2))
    dense = compute(**common, completions=ids, mask=mask, entropy=entropy, logprobs=logprobs)
    ragged = compute(**common, completions=[row[:m].tolist() for row, m in zip(ids, lengths)],
                     entropy=[row[:m] for row, m in zip(entropy, lengths)],
                     logprobs=[row[:m] for row, m in zip(logprobs, lengths)])
    monkeypatch.setattr(pipeline, "ops_for", lambda *arrays: TorchOps("cpu"))  # the device code path
    as_torch = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) and k != "group_ids" else v
                for k, v in common.items()}
    on_torch = compute(**as_torch, completions=torch.as_tensor(ids), mask=torch.as_tensor(mask),
                       entropy=torch.as_tensor(entropy), logprobs=torch.as_tensor(logprobs))
    for other in (ragged, on_torch):
        assert json.dumps(other.rollouts) == json.dumps(dense.rollouts)
    first = dense.rollouts[0]
    k = int(first["group"][1:])
    assert first["prompt"] == "".join(chr(96 + i) for i in prompt_ids[k])
    for j, c in enumerate(first["completions"]):
        row = k * G + j
        assert c["text"] == "".join(chr(96 + i) for i in ids[row][:lengths[row]]) and c["length"] == lengths[row]
        assert c["entropy"] == pytest.approx(entropy[row][:lengths[row]].mean(), abs=1e-5)
    detailed = [c for g in dense.rollouts for c in g["completions"] if "tokens" in c]
    assert len(detailed) == 2 and {np.sign(c["advantage"]) for c in detailed} == {1.0, -1.0}
    for c in detailed:
        assert "".join(c["tokens"]["text"]) == c["text"]
        row = next(k * G + j for j, x in enumerate(first["completions"]) if x is c)
        assert c["tokens"]["entropy"] == np.round(entropy[row][:lengths[row]], 3).tolist()
        assert c["tokens"]["logprob"] == np.round(logprobs[row][:lengths[row]], 3).tolist()
    # A decode function instead of a tokenizer; named reward parts ride along.
    fn = compute(**{**common, "tokenizer": lambda row: "".join(chr(96 + i) for i in row)}, completions=ids,
                 mask=mask, reward_parts={"format": kw["rewards"] * 0.5})
    assert [c["text"] for c in fn.rollouts[0]["completions"]] == [c["text"] for c in first["completions"]]
    assert fn.rollouts[0]["completions"][0]["rewards"] == {"format": first["completions"][0]["reward"] * 0.5}


@pytest.mark.parametrize("budget", [2_000, 16_000, 64_000])
def test_the_step_budget_holds_and_long_texts_lose_their_middle(budget):
    kw, prompts = _batch(words=4_000)  # 20k-character completions
    s = compute(**kw, prompts=prompts, rollouts=RolloutConfig(step_bytes=budget))
    assert 0 < rollout_bytes(s.rollouts) <= budget
    # min_groups (4) whole groups fit, their texts cut; the smallest budget holds fewer even at 64 characters.
    assert len(s.rollouts) == 4 if budget > 2_000 else 1 <= len(s.rollouts) < 4
    for group in s.rollouts:
        for c in group["completions"]:
            assert c["cut"] > 0 and c["text"].startswith("answer ") and c["text"].endswith("word ")
            assert f"[{c['cut']:,} characters cut]" in c["text"]
    assert compute(**kw, rollouts=RolloutConfig(step_bytes=0)).rollouts == []
    short, _ = _batch()
    assert len(compute(**short, rollouts=RolloutConfig(step_bytes=budget)).rollouts) > 4  # more groups fit


def test_the_run_cap_thins_steps_and_is_never_exceeded():
    budget = RunBudget(RolloutConfig(step_bytes=2_000, run_bytes=1_000_000))
    kept = []
    for step in range(10_000):
        allowed = budget.allowance()
        if allowed and budget.admit(min(allowed, 1_900)):
            kept.append(step)
    assert budget.used <= 1_000_000
    assert kept[:250] == list(range(250))  # the start in full (half the cap at every step)
    assert kept[-1] > 9_000 and len([s for s in kept if s > 5_000]) >= 5  # and the end still sampled
    assert not budget.admit(1_000_000)


def test_bad_rollout_inputs_are_usage_errors():
    kw, prompts = _batch()
    with pytest.raises(UsageError, match="one prompt per rollout, or one per group"):
        compute(**kw, prompts=prompts[:5])
    with pytest.raises(UsageError, match="pass completions= as well"):
        compute(advantages=kw["advantages"], prompts=prompts)
    with pytest.raises(UsageError, match="decode"):
        compute(**kw, tokenizer=object())
    with pytest.raises(UsageError, match="reward part"):
        compute(**kw, reward_parts={"bad name!": kw["rewards"]})
    with pytest.raises(UsageError, match="step_bytes"):
        RolloutConfig(step_bytes=10**9)
    with pytest.raises(UsageError, match="groups"):
        RolloutConfig(groups=-1)


def test_rollouts_reach_the_server_and_a_failing_tokenizer_shows_ids(start_run, fake_server):
    kw, prompts = _batch()
    run = start_run(rollouts=RolloutConfig(run_bytes=10_000_000), stats_config=StatsConfig())
    run.log(0, **kw, prompts=prompts, loss=1.0)

    def broken(row):
        raise RuntimeError("decoder bug")

    ids = np.ones((48, 3), dtype=np.int64)
    run.log(1, advantages=kw["advantages"], group_ids=kw["group_ids"], completions=ids, tokenizer=broken, loss=2.0)
    assert run.flush(10)
    steps = fake_server.steps[1]
    assert steps[0]["rollouts"][0]["group"] == "q5" and steps[0]["rollouts"][0]["prompt"] == "prompt of q5"
    assert steps[1]["scalars"]["loss"] == 2.0 and "sign/balance" in steps[1]["scalars"]
    assert steps[1]["rollouts"][0]["completions"][0]["text"] == "1 1 1"
    health = run.health()
    assert health["stats_errors"] == 0
    assert health["rollout_bytes"] == sum(rollout_bytes(steps[s]["rollouts"]) for s in (0, 1))
