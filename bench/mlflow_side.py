"""The ingest workload's scalars sent to an MLflow tracking server on PostgreSQL.

Used by bench/ingest.py when mlflow is installed. One MLflow server process (`--workers 1`,
like the one fadewatch server process), a scratch PostgreSQL database, N runs posting
100 steps x 30 scalars per round with MlflowClient.log_batch (MLflow caps a request at
1,000 metrics, so a round is 3 requests). Histograms are left out: MLflow has no type for
them, so it gets the lighter workload.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _servers import free_port, scratch_postgres

MLFLOW_MAX_METRICS = 1000


def _start(db_url: str, artifacts: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", db_url, "--default-artifact-root", str(artifacts),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the MLflow server did not start")


def run_mlflow_case(seconds: float, runs: int, scalars: int, batch: int) -> dict:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as db_url:
        proc, url = _start(db_url, Path(tmp) / "artifacts")
        try:
            client = MlflowClient(tracking_uri=url)
            exp = client.create_experiment(f"bench-{time.time_ns()}")
            run_ids = [client.create_run(exp).info.run_id for _ in range(runs)]
            latencies: list[float] = []
            stored = 0
            deadline = time.perf_counter() + seconds

            def worker(run_id: str) -> int:
                rng = random.Random(run_id)
                done = 0
                step = 0
                while time.perf_counter() < deadline:
                    now = int(time.time() * 1000)
                    metrics = [Metric(f"metric/{i:02d}", rng.gauss(0, 1), now, step + s)
                               for s in range(batch) for i in range(scalars)]
                    started = time.perf_counter()
                    for k in range(0, len(metrics), MLFLOW_MAX_METRICS):
                        client.log_batch(run_id, metrics=metrics[k:k + MLFLOW_MAX_METRICS])
                    latencies.append(time.perf_counter() - started)
                    step += batch
                    done += batch
                return done

            started = time.perf_counter()
            with ThreadPoolExecutor(runs) as pool:
                stored = sum(pool.map(worker, run_ids))
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    latencies.sort()
    row = {"db": "mlflow+pg", "mode": "max", "runs": runs, "steps_per_s": stored / elapsed,
           "p50_ms": 1000 * statistics.median(latencies),
           "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
           "batches": len(latencies), "errors": 0}
    print(f"{'mlflow+pg':<11} {'max':<14} runs={runs:>3}  {row['steps_per_s']:>9,.0f} steps/s  "
          f"p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms  rounds {row['batches']:>5}  "
          "(30 scalars only, no histograms)", flush=True)
    return row
