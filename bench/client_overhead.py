"""Cost of the hook to the training loop, and the background throughput.

Standard step: 4,096 rollouts (512 prompts x 8), 512-token completions: per-token entropy,
log-probs and mask of 4,096 x 512, completions as token ids, torch CPU tensors.

    .venv/bin/python bench/client_overhead.py            # fadewatch alone
    .venv-bench/bin/python bench/client_overhead.py      # + wandb and rlwatch, side by side

Reports the time the training thread spends in the logging call (p50, p99) and, for
fadewatch, how many standard steps per second its background threads turn into stored
records on a real server. On a CUDA machine the tensors are put on the GPU as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server  # noqa: E402

PROMPTS, GROUP, TOKENS, VOCAB = 512, 8, 512, 32_000


def standard_step(torch, device: str, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = PROMPTS * GROUP
    rewards = (torch.rand(n, generator=g) < torch.rand(PROMPTS, generator=g).repeat_interleave(GROUP)).float()
    grouped = rewards.view(PROMPTS, GROUP)
    adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-6)).view(-1)
    lengths = torch.randint(32, TOKENS + 1, (n,), generator=g)
    mask = (torch.arange(TOKENS)[None, :] < lengths[:, None]).float()
    inputs = {
        "advantages": adv,
        "rewards": rewards,
        "group_ids": torch.arange(PROMPTS).repeat_interleave(GROUP),
        "entropy": torch.rand(n, TOKENS, generator=g) * 3,
        "logprobs": -torch.rand(n, TOKENS, generator=g) * 5,
        "mask": mask,
        "completions": torch.randint(0, VOCAB, (n, TOKENS), generator=g),
    }
    return {k: v.to(device) for k, v in inputs.items()}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return 1000 * statistics.median(ordered), 1000 * p99


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def bench_fadewatch(torch, device: str, steps: int, url: str, data_dir: Path) -> dict:
    import fadewatch

    pool = [standard_step(torch, device, seed) for seed in range(4)]
    run = fadewatch.init(project="bench", name=f"overhead-{device}-{time.time_ns()}", url=url,
                         dir=str(data_dir), mode="online", queue_size=max(1000, steps + 10))
    # Warm up the statistics code paths (first-call costs are not per-step costs).
    run.log(0, **pool[0], loss=0.5)
    run.flush(timeout=120)
    times = []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        inputs = pool[step % len(pool)]
        sync(torch, device)
        t0 = time.perf_counter()
        run.log(step, **inputs, loss=0.5, kl=0.01)
        times.append(time.perf_counter() - t0)
    flushed = run.flush(timeout=600)
    elapsed = time.perf_counter() - started
    health = run.health()
    run.finish(timeout=60)
    p50, p99 = percentiles(times)
    return {"tool": f"fadewatch ({device})", "p50_ms": p50, "p99_ms": p99,
            "background_steps_per_s": steps / elapsed, "flushed": flushed,
            "dropped": health.get("dropped", 0), "stored": health.get("stored")}


def bench_wandb(torch, steps: int, data_dir: Path) -> dict | None:
    try:
        import wandb
    except ImportError:
        return None
    pool = [standard_step(torch, "cpu", seed) for seed in range(4)]
    run = wandb.init(project="bench", mode="offline", dir=str(data_dir), settings=wandb.Settings(silent=True))
    times = []
    for step in range(steps):
        inputs = pool[step % len(pool)]
        t0 = time.perf_counter()
        # What a W&B user logs for the same picture: the advantage histogram and a few scalars.
        wandb.log({"advantages": wandb.Histogram(inputs["advantages"].numpy()),
                   "entropy": float(inputs["entropy"].mul(inputs["mask"]).sum() / inputs["mask"].sum()),
                   "reward": float(inputs["rewards"].mean()), "loss": 0.5, "kl": 0.01}, step=step)
        times.append(time.perf_counter() - t0)
    run.finish()
    p50, p99 = percentiles(times)
    return {"tool": "wandb offline (Histogram + 4 scalars)", "p50_ms": p50, "p99_ms": p99}


def bench_rlwatch(torch, steps: int, data_dir: Path) -> dict | None:
    try:
        import rlwatch
    except ImportError:
        return None
    pool = [standard_step(torch, "cpu", seed) for seed in range(4)]
    monitor = rlwatch.attach(framework="manual", run_id=f"bench-{time.time_ns()}",
                             storage={"log_dir": str(data_dir / "rlwatch")})
    times = []
    for step in range(steps):
        inputs = pool[step % len(pool)]
        t0 = time.perf_counter()
        # rlwatch takes ready-made scalars; reducing the tensors to them is timed too.
        entropy = float(inputs["entropy"].mul(inputs["mask"]).sum() / inputs["mask"].sum())
        monitor.log_step(step, entropy=entropy, rewards=inputs["rewards"].numpy(),
                         advantage_std=float(inputs["advantages"].std()), loss=0.5, kl_divergence=0.01)
        times.append(time.perf_counter() - t0)
    p50, p99 = percentiles(times)
    return {"tool": "rlwatch log_step (its scalars)", "p50_ms": p50, "p99_ms": p99}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a trainer owns the other cores
    print(f"standard step: {PROMPTS * GROUP} rollouts, {TOKENS}-token completions, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with fadewatch_server(f"sqlite:///{tmp / 'bench.db'}", tmp) as url:
            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            for device in devices:
                rows.append(bench_fadewatch(torch, device, args.steps, url, tmp / "client"))
        for peer in (bench_wandb(torch, args.steps, tmp), bench_rlwatch(torch, args.steps, tmp)):
            if peer is None:
                print("(wandb / rlwatch not installed: run with .venv-bench for the side-by-side)")
            else:
                rows.append(peer)
    base = rows[0]
    for row in rows:
        line = f"{row['tool']:<40} log() p50 {row['p50_ms']:8.3f} ms  p99 {row['p99_ms']:8.3f} ms"
        if "background_steps_per_s" in row:
            line += (f"  background {row['background_steps_per_s']:6.1f} steps/s"
                     f"  stored {row['stored']}  dropped {row['dropped']}")
        elif row is not base:
            line += f"  (p50 {row['p50_ms'] / base['p50_ms']:.1f}x fadewatch's)"
        print(line)


if __name__ == "__main__":
    main()
