"""The dashboard benchmark's database: runs as the hook sends them, posted over the HTTP API.

    200 runs × 1,000 steps     project "fleet" (the "other runs"; 16 of them are compared)
    1 run × 100,000 steps      project "long"
    1,000 runs × 10 steps      project "sweep" (the runs page's thousand runs)

Every record is one the real hook wrote (`fadewatch.init(mode="offline")` + `run.log(...)`
on a standard GRPO step: 47 scalars, 5 histograms), renumbered and with its scalars moved a
little per run so charts differ. Rollouts are not posted (they are the rollout benchmark's
subject, and at 64 KB a step would make the dataset tens of gigabytes).
"""

from __future__ import annotations

import gzip
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))

FLEET_RUNS, FLEET_STEPS = 200, 1_000
LONG_STEPS = 100_000
SWEEP_RUNS, SWEEP_STEPS = 1_000, 10
BATCH = 500
THREADS = 4
EXPECTED_RUNS = FLEET_RUNS + 1 + SWEEP_RUNS


def hook_records(count: int, data_dir: Path) -> list[dict]:
    from storage import hook_templates

    return [{k: v for k, v in record.items() if k not in ("rollouts", "samples")}
            for record in hook_templates(count, data_dir)]


def _shift(record: dict, step: int, scale: float) -> dict:
    scalars = {k: (v * scale if isinstance(v, float) else v) for k, v in (record.get("scalars") or {}).items()}
    return {**record, "step": step, "time": time.time(), "scalars": scalars}


def _post_run(url: str, project: str, name: str, steps: int, templates: list[dict], seed: int,
              finish: bool) -> int:
    rng = random.Random(seed)
    scale = 1 + 0.2 * (rng.random() - 0.5)
    with httpx.Client(base_url=f"{url}/api/v1", timeout=300) as api:
        run_id = api.post("/runs", json={"project": project, "name": name,
                                         "config": {"steps": steps, "estimator": "grpo", "seed": seed}}).json()["id"]
        for start in range(0, steps, BATCH):
            records = [_shift(templates[s % len(templates)], s, scale * (1 + 0.001 * (s % 97)))
                       for s in range(start, min(steps, start + BATCH))]
            body = gzip.compress(orjson.dumps({"records": records}), 1)
            api.post(f"/runs/{run_id}/steps", content=body,
                     headers={"content-type": "application/json", "content-encoding": "gzip"}).raise_for_status()
        if finish:
            api.patch(f"/runs/{run_id}", json={"status": "finished"}).raise_for_status()
    return run_id


def held_runs(url: str) -> int:
    return httpx.get(f"{url}/api/v1/runs", params={"limit": 1}, timeout=60).json()["total"]


def build(url: str, data_dir: Path) -> float:
    """Posts the whole dataset; returns the seconds it took."""
    started = time.perf_counter()
    templates = hook_records(8, data_dir)
    jobs = [("long", "long-100k", LONG_STEPS, 0, False)]
    jobs += [("fleet", f"fleet-{i:03d}", FLEET_STEPS, i + 1, i % 3 != 0) for i in range(FLEET_RUNS)]
    jobs += [("sweep", f"sweep-{i:04d}", SWEEP_STEPS, 1000 + i, i % 4 != 0) for i in range(SWEEP_RUNS)]
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(_post_run, url, *job[:3], templates, *job[3:]) for job in jobs]:
            future.result()
    return time.perf_counter() - started


def find_runs(url: str) -> dict[str, list[int]]:
    """Run ids by project, oldest first."""
    body = httpx.get(f"{url}/api/v1/runs", params={"limit": 5000, "sort": "created", "order": "asc"},
                     timeout=60).json()
    out: dict[str, list[int]] = {}
    for run in body["runs"]:
        out.setdefault(run["project"], []).append(run["id"])
    return out
