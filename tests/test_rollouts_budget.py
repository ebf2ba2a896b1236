"""A 10k-step run keeps its rollouts within the per-step budget and the per-run cap, end to end:
the hook's own choice and budgets make the records, the API stores them in big batches."""

from __future__ import annotations

import httpx
import numpy as np

from fadewatch.rollouts import RolloutConfig, RunBudget
from fadewatch.rollouts.fill import rollout_bytes
from fadewatch.rollouts.inputs import RolloutPlan
from fadewatch.stats import compute
from tests.support.browser import start_dashboard_server

STEPS, N, G = 10_000, 16, 4
CONFIG = RolloutConfig(step_bytes=3_000, run_bytes=1_000_000, groups=4, min_groups=2)


def _step(rng: np.random.Generator, step: int) -> dict:
    rewards = (rng.random(N) < rng.random(N // G).repeat(G)).astype(float)
    adv = rewards - rewards.reshape(-1, G).mean(1).repeat(G)
    words = rng.integers(5, 300, N)  # some completions far longer than the budget allows
    texts = [f"step {step} #{i}: " + "tok " * int(w) for i, w in enumerate(words)]
    return dict(advantages=adv, rewards=rewards, group_ids=np.arange(N) // G, completions=texts,
                prompts=[f"prompt {step}-{k}" for k in range(N // G)])


def test_a_10k_step_run_stays_within_its_budgets(tmp_path):
    rng = np.random.default_rng(0)
    budget = RunBudget(CONFIG)
    records, sent = [], {}
    for step in range(STEPS):
        record = {"step": step, "scalars": {"loss": 1.0 / (step + 1)}}
        allowed = budget.allowance()
        if allowed:
            groups = compute(**_step(rng, step), rollouts=RolloutPlan(CONFIG, allowed, step)).rollouts
            size = rollout_bytes(groups)
            assert 0 < size <= allowed <= CONFIG.step_bytes
            if budget.admit(size):
                record["rollouts"] = sent[step] = groups
        records.append(record)
    assert sum(map(rollout_bytes, sent.values())) == budget.used <= CONFIG.run_bytes
    assert len(sent) < STEPS / 10 and max(sent) > 8_000  # thinned, yet the end of the run is there

    server = start_dashboard_server(tmp_path)
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as api:
            run_id = api.post("/runs", json={"project": "budget", "name": "10k"}).json()["id"]
            for i in range(0, STEPS, 2_500):
                r = api.post(f"/runs/{run_id}/steps", json={"records": records[i:i + 2_500]})
                assert r.status_code == 200 and r.json()["stored"] == 2_500, r.text
            assert api.get(f"/runs/{run_id}/rollouts/steps").json()["steps"] == sorted(sent)
            stored, cursor = [], None
            while True:
                page = api.get(f"/runs/{run_id}/rollouts", params={"order": "asc", "limit": 1_000,
                                                                    **({"cursor": cursor} if cursor else {})}).json()
                stored += page["rollouts"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
    finally:
        server.stop()
    expected = [(step, g["group"], g["prompt"], c["text"]) for step, groups in sorted(sent.items())
                for g in groups for c in g["completions"]]
    assert [(r["step"], int(r["group"]), r["prompt"], r["completion"]) for r in stored] == expected
