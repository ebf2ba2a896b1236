"""On a GPU, log() launches work and returns: it must never synchronise with the device.

Runs only where CUDA is available; torch's sync debug mode turns any synchronising call on
the training thread (``.item()``, a blocking copy, ...) into an error.
"""

from __future__ import annotations

import threading

import pytest
import torch

from fadewatch import stats_worker
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_log_never_synchronises_with_the_gpu(start_run, fake_server, monkeypatch):
    gate = threading.Event()  # hold the worker back, so only the training thread runs
    process = stats_worker.StatsWorker._process
    monkeypatch.setattr(stats_worker.StatsWorker, "_process", lambda self, job: (gate.wait(30), process(self, job)))
    dev = torch.device("cuda")
    n, g, t = 64, 8, 128
    head = torch.nn.Linear(32, 256, device=dev)
    run = start_run()
    run.watch_head(head, every=2)
    batches = []
    for step in range(4):
        rewards = (torch.rand(n, device=dev) > 0.5).double()
        adv = rewards - rewards.view(-1, g).mean(1).repeat_interleave(g)
        batches.append(dict(advantages=adv, rewards=rewards, group_ids=torch.arange(n).div(g, rounding_mode="floor"),
                            entropy=torch.rand(n, t, device=dev), logprobs=-torch.rand(n, t, device=dev),
                            mask=torch.ones(n, t, device=dev), loss=torch.tensor(0.5, device=dev),
                            # the rollout inspector's choice and gather run on the device too
                            completions=torch.randint(1, 27, (n, t), device=dev),
                            prompts=[f"prompt {k}" for k in range(n // g)],
                            tokenizer=lambda row: "".join(chr(96 + i) for i in row)))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step, data in enumerate(batches):
            with torch.no_grad():
                head.weight.add_(0.01)
            run.log(step, **data)
    finally:
        torch.cuda.set_sync_debug_mode(0)
        gate.set()
    assert run.flush(30)
    assert fake_server.stored_steps() == [0, 1, 2, 3]
    record = fake_server.steps[1][2]
    assert record["scalars"]["loss"] == 0.5 and "sign/balance" in record["scalars"]
    assert "geometry/rank1_frac" in record["scalars"]
    assert run.health()["stats_errors"] == 0
    groups = record["rollouts"]
    assert groups and all(len(grp["completions"]) == g and grp["prompt"].startswith("prompt ") for grp in groups)
    assert all(len(c["text"]) == t for grp in groups for c in grp["completions"])
    assert any("tokens" in c for grp in groups for c in grp["completions"])
