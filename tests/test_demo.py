"""`fadewatch demo`: the task, the trainer, and short runs end to end on real servers."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from fadewatch import advantages
from fadewatch.demo import DemoConfig, DigitSumTask, Trainer, train
from fadewatch.demo.session import DemoOptions, run_demo
from fadewatch.errors import UsageError
from tests.support.polling import wait_until
from tests.support.servers import LiveServer, free_port
from tests.test_client_fakes import fresh_client_state  # noqa: F401
from tests.test_packaging import _run_without

# A short warm-up: these tests check the plumbing, not the phenomena (test_demo_phenomena.py).
QUICK = DemoConfig(warmup_steps=20)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """As in the demo: tiny tensors on a busy 2-core machine run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the task ----------------------------------------------------------------------------

def test_reward_is_one_exactly_when_the_digits_sum_to_the_target():
    task = DigitSumTask()
    digits = torch.tensor([[1, 2, 3, 9, 9], [9, 9, 9, 9, 1], [0, 0, 5, 5, 0]])
    length = torch.tensor([3, 5, 4])
    mask = task.mask(length)
    target = torch.tensor([6, 37, 11])
    assert task.reward(target, digits * mask, mask).tolist() == [1.0, 1.0, 0.0]


def test_prompts_mix_lengths_and_targets_and_each_has_many_answers():
    task = DigitSumTask()
    length, target = task.sample(2000, torch.Generator().manual_seed(0))
    assert set(length.tolist()) == set(task.lengths)
    assert len({(n, t) for n, t in zip(length.tolist(), target.tolist())}) > 60
    assert ((target >= 0.2 * 9 * length - 1) & (target <= 0.8 * 9 * length)).all()
    for n, t in {(3, int(target[i])) for i in range(200) if length[i] == 3}:
        answers = sum(1 for d in itertools.product(range(10), repeat=n) if sum(d) == t)
        assert answers >= 10, (n, t, answers)


# ---- the trainer -------------------------------------------------------------------------

def test_trainer_is_deterministic_for_a_seed_and_samples_real_completions():
    a, b = Trainer("grpo", seed=3, config=QUICK), Trainer("grpo", seed=3, config=QUICK)
    for _ in range(3):
        sa, sb = a.step(), b.step()
        assert torch.equal(sa.tokens, sb.tokens) and torch.equal(sa.advantages, sb.advantages)
    other = Trainer("grpo", seed=4, config=QUICK).step()
    assert not torch.equal(other.tokens, Trainer("grpo", seed=3, config=QUICK).step().tokens)
    N = QUICK.prompts_per_step * QUICK.group_size
    assert sa.tokens.shape == sa.mask.shape == sa.entropy.shape == sa.logprobs.shape == (N, 5)
    # Rewards are the task's verdict on the sampled digits; advantages are the library's GRPO.
    sums = (sa.tokens * sa.mask).sum(dim=1)
    targets = torch.tensor([int(p.split("T=")[1]) for p in sa.prompts])
    assert torch.equal(sa.rewards, (sums == targets).float())
    assert torch.allclose(sa.advantages, advantages.grpo(sa.rewards, sa.group_ids))
    assert ((sa.logprobs <= 0) | ~sa.mask).all() and (sa.entropy[sa.mask] > 0).all()
    assert sa.completions[0] == "".join(map(str, sa.tokens[0, : int(sa.mask[0].sum())].tolist()))


def test_fade_trainer_reports_its_schedule_and_the_update_moves_the_policy():
    t = Trainer("fade", seed=0, config=QUICK)
    before = t.policy.head.weight.detach().clone()
    s = t.step()
    assert {"fade/alpha", "fade/delta", "fade/solve_rate_ema", "fade/entropy_ema"} <= set(s.scalars)
    assert 1.0 <= s.scalars["fade/alpha"] <= 3.0 and 0.3 <= s.scalars["fade/delta"] <= 1.0
    assert not torch.equal(before, t.policy.head.weight)


def test_bad_estimator_or_steps_fail_clearly():
    with pytest.raises(UsageError, match="unknown estimator 'ppo'"):
        Trainer("ppo", config=QUICK)
    with pytest.raises(UsageError, match="steps"):
        train("grpo", steps=-1, config=QUICK)
    with pytest.raises(UsageError, match="unknown bogus"):
        run_demo(DemoOptions(estimators=("psr", "bogus"), config=QUICK, progress=False))


# ---- short demos against real servers -----------------------------------------------------

def _series(client: httpx.Client, run_id: int, keys: str) -> dict:
    r = client.get(f"/runs/{run_id}/series", params={"keys": keys, "max_points": 20000})
    r.raise_for_status()
    return r.json()["series"]


def test_short_demo_logs_every_statistic_to_a_running_server(tmp_path):
    server = LiveServer(tmp_path / "server").start()
    try:
        opts = DemoOptions(port=server.port, data_dir=tmp_path / "client", steps=12, estimators=("psr", "fade"),
                           config=QUICK, progress=False, exit_when_done=True)
        lines: list[str] = []
        result = run_demo(opts, echo=lines.append)
        assert not result.started_server and result.delivered
        assert any("already running" in line for line in lines)
        with server.client() as c:
            runs = {r["name"].split("-")[0]: r for r in c.get("/runs", params={"project": "demo"}).json()["runs"]}
            assert set(runs) == {"psr", "fade"}
            for name, run in runs.items():
                assert run["status"] == "finished" and run["step_count"] == 12
                series = _series(c, run["id"], "entropy/mean,sign/balance,pass@1,pass@8,diversity/distinct_frac,"
                                               "difficulty/peak,loss,kl,geometry/rank1_frac")
                assert series["entropy/mean"]["steps"] == list(range(12))
                assert all(v is not None for v in series["pass@8"]["values"])
                assert series["geometry/rank1_frac"]["steps"] == [10]  # watch_head every 10 steps
                hist = c.get(f"/runs/{run['id']}/histograms", params={"name": "advantages"})
                assert hist.status_code == 200 and hist.json()
                # The inspector's rollouts: prompts, decoded digits, per-token entropy for shading.
                rollouts = c.get(f"/runs/{run['id']}/rollouts", params={"step": 11}).json()["rollouts"]
                assert rollouts and all(r["prompt"].startswith("L=") and r["completion"].isdigit() for r in rollouts)
                assert any(r["tokens"] and "".join(r["tokens"]["text"]) == r["completion"] for r in rollouts)
            psr_balance = _series(c, runs["psr"]["id"], "sign/balance")["sign/balance"]["values"]
            assert all(b == 1.0 for b in psr_balance if b is not None)  # positive-only: all mass positive
            fade_alpha = _series(c, runs["fade"]["id"], "fade/alpha")["fade/alpha"]["values"]
            assert len(fade_alpha) == 12
        figures = {f.estimator: f for f in result.figures}
        assert figures["psr"].steps == 12 and figures["psr"].entropy[0] > 1.0
    finally:
        server.stop()


def test_demo_command_starts_a_server_serves_until_ctrl_c(tmp_path):
    """The CLI on a free port: prints the dashboard URL, trains, keeps serving, stops on Ctrl-C."""
    port = free_port()
    env = {**os.environ, "FADEWATCH_DIR": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fadewatch.cli", "demo", "--port", str(port), "--dir", str(tmp_path / "data"),
         "--steps", "3", "--estimators", "grpo,nsr", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    out: list[str] = []
    try:
        def saw(text: str) -> bool:
            line = proc.stdout.readline()
            out.append(line)
            if not line and proc.poll() is not None:
                raise AssertionError("demo exited early:\n" + "".join(out))
            return text in line

        wait_until(lambda: saw(f"Dashboard: http://127.0.0.1:{port}/"), timeout=60, what="the dashboard URL")
        wait_until(lambda: saw("keeps serving"), timeout=120, what="training to end")
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/").status_code == 200  # the dashboard
        runs = httpx.get(f"{url}/api/v1/runs", params={"project": "demo"}).json()["runs"]
        assert sorted(r["name"].split("-")[0] for r in runs) == ["grpo", "nsr"]
        assert all(r["step_count"] == 3 and r["status"] == "finished" for r in runs)
        assert (tmp_path / "data" / "fadewatch.db").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(out)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/readyz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(out) + proc.stdout.read()
    assert "estimator" in text and "grpo" in text and "compare?runs=" in text


def test_demo_refuses_a_port_held_by_something_else(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "fadewatch.cli", "demo", "--port", str(port), "--dir", str(tmp_path),
             "--steps", "1", "--exit-when-done"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"http://127.0.0.1:{port}" in proc.stderr and "port" in proc.stderr


def test_demo_refuses_a_port_where_another_http_service_answers(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from fadewatch.demo.serving import ServerUnavailable

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ServerUnavailable, match="not a fadewatch server"):
            run_demo(DemoOptions(port=other.server_address[1], data_dir=tmp_path, config=QUICK, progress=False))
    finally:
        other.shutdown()
    assert not (tmp_path / "fadewatch.db").exists()


def test_demo_is_a_command_of_the_cli():
    proc = subprocess.run([sys.executable, "-m", "fadewatch.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert "demo" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "fadewatch.cli", "demo", "--help"], capture_output=True, text=True,
                          timeout=60)
    for option in ("--port", "--dir", "--steps", "--estimators", "--seed", "--exit-when-done"):
        assert option in proc.stdout


def test_demo_without_torch_says_what_to_install():
    proc = _run_without(("torch",), "from fadewatch.cli import main; main(['demo'])")
    assert proc.returncode != 0
    assert "pip install 'fadewatch[demo]'" in proc.stderr


def test_bad_estimators_on_the_command_line_fail_before_training(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fadewatch.cli", "demo", "--dir", str(tmp_path),
                           "--estimators", "psr,reinforce++"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "unknown reinforce++" in proc.stderr and "grpo" in proc.stderr
    assert not Path(tmp_path, "fadewatch.db").exists()
