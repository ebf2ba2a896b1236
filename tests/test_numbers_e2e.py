"""The numbers on screen, end to end: the real hook logs to a real `fadewatch server` on a free
port, and what comes back over the API is checked against the raw values that were logged.

- a positive-only run (advantages 0 and 1) read in merged columns, from single steps and
  from pre-aggregated step blocks, keeps its quantile bands inside [min, max] and within one
  bin of the exact quantiles of the values merged;
- ``fadewatch.advantages.grpo`` gives a constant group exactly 0 in float32 and bf16;
- a step with |A| = 1e160 keeps its sign axis;
- a NaN reward is counted and flagged (the nonfinite alert fires), not read as a failure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fadewatch
from fadewatch import advantages
from tests.support.polling import wait_until
from tests.test_client_fakes import fresh_client_state  # noqa: F401

torch = pytest.importorskip("torch")

STEPS, PROMPTS, G = 320, 8, 4
BIN = 0.1  # the advantages histogram: [-4, 4) in 80 bins
QUANTILES = ("0.05", "0.25", "0.5", "0.75", "0.95")


def positive_only_step(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rewards = (rng.random(PROMPTS * G) < rng.uniform(0.05, 0.95)).astype(np.float32)
    return advantages.psr(rewards), rewards


def test_merged_quantiles_estimators_huge_and_nan_inputs_end_to_end(live_server, tmp_path):
    rng = np.random.default_rng(0)
    run = fadewatch.init(project="numbers", name="positive-only", url=live_server.url, dir=tmp_path)
    logged = {}
    for step in range(STEPS):
        adv, rewards = positive_only_step(rng)
        logged[step] = adv.astype(np.float64)
        run.log(step, advantages=adv, rewards=rewards, group_ids=G)

    # GRPO on a constant continuous-reward group, as a bf16 and a float32 trainer computes it.
    for step, dtype in ((STEPS, torch.bfloat16), (STEPS + 1, torch.float32)):
        r = torch.tensor([0.3] * G + [0.1, 0.9, 0.4, 0.6] + [0.7] * G, dtype=dtype)
        a = advantages.grpo(r, G)
        assert a.dtype == dtype and torch.equal(a[:G], torch.zeros(G, dtype=dtype))
        assert torch.equal(a[-G:], torch.zeros(G, dtype=dtype))
        run.log(step, advantages=a, rewards=r, group_ids=G)
    huge = np.array([1e160, -1e160, 3e159, -3e159, 2e160, 0.0, -2e160, 5e159])
    run.log(STEPS + 2, advantages=huge, rewards=np.ones(8), group_ids=4)
    rewards = np.array([1.0, 1.0, np.nan, 1.0, 0.0, 0.0, 0.0, 1.0])
    run.log(STEPS + 3, advantages=advantages.grpo(np.nan_to_num(rewards), 4), rewards=rewards, group_ids=4)
    assert run.finish(timeout=60), run.health()

    with live_server.client() as api:
        run_id = live_server.find_run("numbers", "positive-only")["id"]
        for max_steps, last in ((20, STEPS - 1), (60, 199)):  # columns of 16 and of about 3 steps
            m = api.get(f"/runs/{run_id}/histograms",
                        params={"name": "advantages", "max_steps": max_steps, "max_step": last}).json()
            assert len(m["steps"]) <= max_steps and any(s > f for s, f in zip(m["steps"], m["first_steps"]))
            for col, (first, last_step) in enumerate(zip(m["first_steps"], m["steps"])):
                raw = np.concatenate([logged[s] for s in range(first, last_step + 1)])
                assert m["min"][col] == raw.min() and m["max"][col] == raw.max()
                for key in QUANTILES:
                    got = m["quantiles"][key][col]
                    assert raw.min() <= got <= raw.max(), (col, key, got)
                    assert abs(got - np.quantile(raw, float(key))) <= BIN, (col, key, got)

        keys = ("sign/m_pos,sign/m_neg,sign/balance,adv/kurtosis,difficulty/ess_frac,rewards/nonfinite,"
                "reward/success_rate,reward/mean,pass@1,adv/mean,advantages/nonfinite")
        series = api.get(f"/runs/{run_id}/series",
                         params={"keys": keys, "min_step": STEPS, "max_points": 10}).json()["series"]

        def at(key, step):
            s = series[key]
            return s["values"][s["steps"].index(step)] if step in s["steps"] else None

        for step in (STEPS, STEPS + 1):  # the constant groups add no mass
            assert at("sign/m_pos", step) == pytest.approx(at("sign/m_neg", step), rel=5e-3)  # bf16 rounding
        assert at("sign/m_pos", STEPS + 2) == pytest.approx(3.8e160 / 8, rel=1e-12)
        assert at("sign/m_neg", STEPS + 2) == pytest.approx(3.3e160 / 8, rel=1e-12)
        assert at("sign/balance", STEPS + 2) == pytest.approx(0.5 / 7.1, rel=1e-9)
        assert math.isfinite(at("adv/kurtosis", STEPS + 2)) and math.isfinite(at("difficulty/ess_frac", STEPS + 2))
        assert at("rewards/nonfinite", STEPS + 3) == 1.0 and at("advantages/nonfinite", STEPS + 3) == 0.0
        assert at("reward/success_rate", STEPS + 3) == pytest.approx(4 / 7)  # the NaN is not a failure
        assert at("pass@1", STEPS + 3) == pytest.approx((1.0 + 0.25) / 2)
        assert at("rewards/nonfinite", STEPS + 2) == 0.0

        def nonfinite_alert():
            found = api.get("/alerts", params={"run_id": run_id, "rule": "nonfinite"}).json()["alerts"]
            return found and found[0]["state"] == "firing" and found[0]

        alert = wait_until(nonfinite_alert, timeout=10, what="the nonfinite alert to fire")
        assert alert["step"] == STEPS + 3 and "rewards/nonfinite" in alert["values"]["nonfinite"]
