"""Rollouts of a 10,000-step run: bytes stored per step, the API's answer times, the inspector's page time.

Workload: one run of --steps steps. Each step carries the scalars and histograms of
bench/streams.py and, where the per-run cap lets it, the rollouts the hook keeps (its own
choice and fill: bench/_rollout_batches.py) of a synthetic GRPO batch of --prompts math
problems x 8 step-by-step completions, within the default budget (64 KB a step) and the
default cap (256 MB a run). Records are made once, then posted to a fresh server on
SQLite and on PostgreSQL in batches of 200.

Measured on each database:
  wire      JSON bytes of the rollouts the hook sent, per step that kept some
  stored    bytes the rollout tables take, search indexes included, per step that kept
            some (SQLite: dbstat after a checkpoint; PostgreSQL: pg_total_relation_size)
  api       GET /rollouts: one step (median of 50 random steps), a text search over the
            whole run (a rare and a common word), one prompt's groups over training
  page      the inspector at a middle step in headless Chromium, from navigation to its
            cards drawn (median of --loads), and a move to the next step (median of 10)

    .venv/bin/python bench/rollouts.py                          # 10,000 steps, both databases
    .venv/bin/python bench/rollouts.py --steps 2000 --db sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _rollout_batches import batch, hook_rollouts  # noqa: E402
from _servers import fadewatch_server, scratch_postgres  # noqa: E402
from streams import RunShape, step_record  # noqa: E402

from fadewatch.rollouts import RolloutConfig, RunBudget  # noqa: E402
from fadewatch.rollouts.fill import rollout_bytes  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BATCH = 200


def make_records(steps: int, prompts: int, path: Path) -> dict:
    """The run's records, one JSON line each, made with the hook's default budgets."""
    import numpy as np

    config = RolloutConfig()
    budget = RunBudget(config)
    shape = RunShape(steps=steps, difficulty_histograms=True, samples=0)
    rng = np.random.default_rng(0)
    kept, wire, last, started = 0, 0, None, time.perf_counter()
    with path.open("w") as out:
        for step in range(steps):
            record = step_record(shape, step, rng)
            allowed = budget.allowance()
            if allowed:
                groups = hook_rollouts(batch(step, prompts=prompts), allowed, step, config)
                size = rollout_bytes(groups)
                if budget.admit(size):
                    record["rollouts"] = groups
                    kept, wire, last = kept + 1, wire + size, step
            out.write(json.dumps(record) + "\n")
            if step % 1000 == 999:
                print(f"  made {step + 1:,} steps ({time.perf_counter() - started:.0f} s)", flush=True)
    return {"steps": steps, "kept": kept, "wire": wire, "last": last}


def post(url: str, path: Path) -> int:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=300) as api:
        run_id = api.post("/runs", json={"project": "bench", "name": "rollouts-10k"}).json()["id"]
        lines: list[str] = []
        with path.open() as f:
            for line in f:
                lines.append(line)
                if len(lines) == BATCH:
                    _send(api, run_id, lines)
                    lines = []
        if lines:
            _send(api, run_id, lines)
    return run_id


def _send(api: httpx.Client, run_id: int, lines: list[str]) -> None:
    body = '{"records":[' + ",".join(line.strip() for line in lines) + "]}"
    api.post(f"/runs/{run_id}/steps", content=body, headers={"Content-Type": "application/json"}).raise_for_status()


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def api_times(url: str, run_id: int) -> dict:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=120) as api:
        steps = api.get(f"/runs/{run_id}/rollouts/steps").json()["steps"]
        rng = random.Random(0)
        pick = [rng.choice(steps) for _ in range(50)]
        one = iter(pick)
        out = {"step": _median_ms(lambda: api.get(f"/runs/{run_id}/rollouts", params={"step": next(one)}), 50)}
        for name, q in (("search rare", "Dmitri has 17"), ("search common", "double-check")):
            out[name] = _median_ms(lambda q=q: api.get(f"/runs/{run_id}/rollouts", params={"q": q}), 5)
        pid = api.get(f"/runs/{run_id}/rollouts", params={"step": steps[len(steps) // 2]}).json()["rollouts"][0]
        out["prompt over training"] = _median_ms(lambda: api.get(f"/runs/{run_id}/rollouts", params={
            "prompt_id": pid["prompt_id"], "order": "asc"}), 5)
        return {**out, "steps": steps}


def page_times(url: str, run_id: int, steps: list[int], loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    middle = steps[len(steps) // 2]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        first = []
        for _ in range(loads):
            t = time.perf_counter()
            page.goto(f"{url}/runs/{run_id}/rollouts?step={middle}")
            page.wait_for_selector(".fw-group-card")
            first.append(time.perf_counter() - t)
        moves = []
        for _ in range(10):
            label = page.inner_text("#ro-step-label")
            t = time.perf_counter()
            page.click("#ro-next")
            page.wait_for_function("(old) => document.getElementById('ro-step-label').innerText !== old", arg=label)
            page.wait_for_selector(".fw-group-card")
            moves.append(time.perf_counter() - t)
        browser.close()
    return {"first": 1000 * statistics.median(first), "next step": 1000 * statistics.median(moves)}


def sqlite_bytes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    return sum(size for name, size in rows
               if name.startswith(("rollout", "ix_rollout", "uq_rollout", "sqlite_autoindex_rollout")))


def _analyze(db_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE rollouts, rollout_groups"))
    engine.dispose()


def postgres_bytes(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE rollouts, rollout_groups"))
        size = conn.scalar(text("SELECT pg_total_relation_size('rollouts') + pg_total_relation_size('rollout_groups')"))
        trgm = conn.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%trgm'"))
    engine.dispose()
    if trgm != 2:
        print("  (the pg_trgm indexes are missing: search reads the rows)")
    return int(size)


def measure(db: str, records: Path, made: dict, loads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = scratch_postgres() if db == "postgresql" else None
        db_url = ctx.__enter__() if ctx else f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            with fadewatch_server(db_url, Path(tmp), env={"FADEWATCH_RATE_LIMIT_PER_S": "0"}) as url:
                t = time.perf_counter()
                run_id = post(url, records)
                ingest = time.perf_counter() - t
                if db == "postgresql":
                    _analyze(db_url)  # what autovacuum does after a load this size
                api = api_times(url, run_id)
                page = page_times(url, run_id, api.pop("steps"), loads)
            stored = sqlite_bytes(Path(tmp) / "bench.db") if db == "sqlite" else postgres_bytes(db_url)
        finally:
            if ctx:
                ctx.__exit__(None, None, None)
    kept = made["kept"]
    print(f"\n{db}: {made['steps']:,} steps, {kept:,} kept rollouts (the last at step {made['last']:,}); "
          f"ingest {made['steps'] / ingest:,.0f} steps/s")
    print(f"  wire    {made['wire'] / kept / 1024:,.1f} KiB per kept step, {made['wire'] / 2**20:,.1f} MiB in all")
    print(f"  stored  {stored / kept / 1024:,.1f} KiB per kept step, {stored / 2**20:,.1f} MiB in all "
          f"({stored / made['wire']:.2f} x the wire bytes)")
    print("  api     " + ", ".join(f"{k} {v:,.0f} ms" for k, v in api.items()))
    print("  page    " + ", ".join(f"{k} {v:,.0f} ms" for k, v in page.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step (8 completions each)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "records.jsonl"
        print(f"making {args.steps:,} steps of records with the hook's choice of rollouts ...", flush=True)
        made = make_records(args.steps, args.prompts, records)
        print(f"  {os.path.getsize(records) / 2**20:,.0f} MiB of records")
        for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
            measure(db, records, made, args.loads)


if __name__ == "__main__":
    main()
