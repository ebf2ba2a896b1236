"""Ingest throughput and latency of `fadewatch server`, on SQLite and PostgreSQL, beside a raw COPY.

Two workloads, side by side in one run:
  hook   the hook's real records (47 scalars, 5 histograms, rollouts left out), gzip batches
         of 500 steps posted by 4 threads to PostgreSQL, as fast as answered and paced; then
         a raw COPY of the same records into the same PostgreSQL, and the ratio of the two
         (bench/_ingest_hook.py)
  light  step records of 30 scalars and 2 histograms of 64 bins, gzip JSON batches of
         100 steps, posted over HTTP by 1, 8 and 32 concurrent runs (one connection each)

    .venv/bin/python bench/ingest.py                # both workloads, both databases, 10 s per case
    .venv/bin/python bench/ingest.py --db postgresql --runs 8 --paced 2000
    .venv/bin/python bench/ingest.py --workload hook --seconds 20

Side by side, when `mlflow` is installed: the same scalars sent with MlflowClient.log_batch
to an MLflow tracking server on the same PostgreSQL, and the ratio of step rates.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _ingest_hook import bench_hook, cpu_by_process  # noqa: E402
from _servers import fadewatch_process, scratch_postgres  # noqa: E402

SCALARS = 30
BINS = 64
BATCH = 100


def make_record(step: int, rng: random.Random) -> dict:
    scalars = {f"metric/{i:02d}": rng.gauss(0, 1) for i in range(SCALARS)}
    histograms = {}
    for name in ("advantages", "entropy"):
        counts = [float(rng.randint(0, 200)) for _ in range(BINS)]
        histograms[name] = {
            "lo": -4.0, "hi": 4.0, "bins": BINS, "counts": counts, "underflow": 3.0, "overflow": 1.0,
            "count": sum(counts) + 4, "sum": rng.gauss(0, 10), "sum_sq": 4000.0 + rng.random(),
            "min": -4.5, "max": 4.2, "quantiles": {"0.05": -2.0, "0.5": 0.0, "0.95": 2.0},
        }
    return {"step": step, "time": time.time(), "scalars": scalars, "histograms": histograms}


def make_bodies(batches: int, seed: int) -> list[bytes]:
    """Pre-built gzip bodies, so the load generator spends its CPU on sending only."""
    rng = random.Random(seed)
    return [
        gzip.compress(
            json.dumps({"records": [make_record(b * BATCH + i, rng) for i in range(BATCH)]}).encode(), 1
        )
        for b in range(batches)
    ]


async def run_case(url: str, runs: int, seconds: float, prebuilt: int, rate: float | None = None) -> dict:
    """Closed loop (each run posts its next batch as soon as the last is answered), or
    paced: the runs together offer `rate` steps/s, as trainers do, and latency is measured
    at that load."""
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=60,
                                 limits=httpx.Limits(max_connections=runs + 4)) as client:
        run_ids = []
        for i in range(runs):
            r = await client.post("/runs", json={"project": "bench", "name": f"r{runs}-{i}-{time.time_ns()}"})
            run_ids.append(r.json()["id"])
        bodies = make_bodies(prebuilt, seed=runs)
        latencies: list[float] = []
        stored = 0
        errors = 0
        deadline = time.perf_counter() + seconds

        interval = runs * BATCH / rate if rate else 0.0

        async def worker(run_id: int, index: int) -> None:
            nonlocal stored, errors
            next_at = time.perf_counter() + interval * index / runs
            for body in bodies:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                r = await client.post(
                    f"/runs/{run_id}/steps", content=body,
                    headers={"content-type": "application/json", "content-encoding": "gzip"},
                )
                latencies.append(time.perf_counter() - started)
                if r.status_code == 200:
                    stored += r.json()["stored"]
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(rid, i) for i, rid in enumerate(run_ids)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "mode": f"paced {rate:,.0f}/s" if rate else "max",
        "runs": runs,
        "steps_per_s": stored / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)],
        "batches": len(latencies),
        "errors": errors,
    }


def bench_fadewatch(db: str, seconds: float, concurrency: list[int], paced: float, workers: int = 1) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if db == "sqlite":
            ctx = _nullcontext(f"sqlite:///{Path(tmp) / 'bench.db'}")
        else:
            ctx = scratch_postgres()
        with ctx as db_url, fadewatch_process(db_url, Path(tmp), workers=workers) as (url, proc):
            for runs in concurrency:
                # Enough distinct batches for every run at up to ~20k steps/s.
                prebuilt = max(4, int(seconds * 20_000 / BATCH / runs) + 2)
                for rate in (None, paced):
                    before = cpu_by_process(proc.pid)
                    row = asyncio.run(run_case(url, runs, seconds, prebuilt, rate))
                    after = cpu_by_process(proc.pid)
                    # How the work fell between the server's processes (--workers): a kept-alive
                    # connection stays with the process that accepted it.
                    row["cpu_by_process"] = sorted((after[p] - before.get(p, 0.0) for p in after
                                                    if after[p] - before.get(p, 0.0) > 0.05), reverse=True)
                    row["db"] = db
                    results.append(row)
                    print(_fmt(row), flush=True)
    return results


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


def _fmt(row: dict) -> str:
    return (f"{row['db']:<11} {row['mode']:<14} runs={row['runs']:>3}  {row['steps_per_s']:>9,.0f} steps/s  "
            f"p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms  "
            f"batches {row['batches']:>5}  errors {row['errors']}"
            + (f"  server CPU by process {' / '.join(f'{c:.1f}' for c in row['cpu_by_process'])} s"
               if row.get("cpu_by_process") else ""))


def bench_mlflow(seconds: float, runs: int) -> dict | None:
    """The same scalars through MLflow's log_batch, if mlflow is installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("mlflow            not installed: side-by-side skipped (pip install mlflow)")
        return None
    from mlflow_side import run_mlflow_case

    return run_mlflow_case(seconds=seconds, runs=runs, scalars=SCALARS, batch=BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each case")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", default="1,8,32", help="concurrent runs per case")
    parser.add_argument("--paced", type=float, default=2000.0, help="offered steps/s of the paced cases")
    parser.add_argument("--workload", choices=["hook", "light", "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="server processes (fadewatch server --workers)")
    parser.add_argument("--templates", type=int, default=8, help="distinct hook records to cycle through")
    args = parser.parse_args()
    concurrency = [int(x) for x in args.runs.split(",")]
    if args.workload in ("hook", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            bench_hook(scratch_postgres, args.templates, args.seconds, args.paced, Path(tmp), args.workers)
    if args.workload == "hook":
        return
    print(f"light workload: {SCALARS} scalars + 2 x {BINS}-bin histograms per step, {BATCH} steps per gzip batch")
    rows = []
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        rows += bench_fadewatch(db, args.seconds, concurrency, args.paced, args.workers if db == "postgresql" else 1)
    ml = bench_mlflow(args.seconds, 8)
    if ml:
        pg8 = next((r for r in rows if r["db"] == "postgresql" and r["runs"] == 8 and r["mode"] == "max"), None)
        if pg8:
            print(f"fadewatch/mlflow step-rate ratio at 8 runs: {pg8['steps_per_s'] / ml['steps_per_s']:.1f}x")


if __name__ == "__main__":
    main()
