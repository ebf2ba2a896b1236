"""What one stored step costs on PostgreSQL: rows and bytes per table, and CPU per step.

Steps are posted over HTTP to one `fadewatch server` on a scratch PostgreSQL database, in
gzip batches of 100, then every table is measured with pg_total_relation_size (heap, TOAST
and indexes) after a VACUUM, and again after VACUUM FULL (no dead or free space). CPU is
the server process's and its PostgreSQL backends' user+system time over the ingest.

Two workloads:
  hook   what the real hook sends for a standard GRPO step (512 prompts x 8, 512 tokens):
         records made by `fadewatch.init(mode="offline")` + `run.log(...)`, read back from
         its spool (43 scalars, 5 histograms, rollouts within the default 64 KB budget)
  bench  bench/ingest.py's record: 30 scalars and 2 histograms of 64 bins, no samples

    .venv/bin/python bench/storage.py                        # both, 20,000 steps over 4 runs
    .venv/bin/python bench/storage.py --workload hook --steps 50000 --runs 10
    .venv/bin/python bench/storage.py --store-cpu 200          # ingest's database side, in process

--store-cpu times the database side of ingest alone: store_batch (steps and histograms, and
the step blocks within it) on 100-step batches of bench records, in this process, on a
scratch PostgreSQL; CPU of this process only (the server's share), with the blocks apart.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server, scratch_postgres  # noqa: E402
from ingest import make_record  # noqa: E402

BATCH = 100
# The metric tables (what a step's scalars and histograms cost, the 3 KB/step budget) and
# the rollout tables (budgeted on their own: 64 KB of rollouts per step by default).
METRIC_TABLES = ("steps", "histograms", "scalar_blocks", "histogram_blocks", "layouts", "runs")
ROLLOUT_TABLES = ("rollout_groups", "rollouts")
TABLES = METRIC_TABLES + ROLLOUT_TABLES
PROMPTS, GROUP, TOKENS, VOCAB = 512, 8, 512, 32_000


def hook_templates(count: int, data_dir: Path) -> list[dict]:
    """Records exactly as the hook writes them, from `count` standard steps of fresh data."""
    import fadewatch

    rng = np.random.default_rng(0)
    n = PROMPTS * GROUP
    run = fadewatch.init(project="storage", name="templates", mode="offline", dir=str(data_dir))
    for step in range(count):
        rewards = (rng.random(n) < np.repeat(rng.random(PROMPTS), GROUP)).astype(np.float32)
        grouped = rewards.reshape(PROMPTS, GROUP)
        advantages = ((grouped - grouped.mean(1, keepdims=True)) / (grouped.std(1, keepdims=True) + 1e-6)).ravel()
        lengths = rng.integers(32, TOKENS + 1, n)
        run.log(step, advantages=advantages, rewards=rewards, group_ids=np.repeat(np.arange(PROMPTS), GROUP),
                entropy=rng.random((n, TOKENS), dtype=np.float32) * 3,
                logprobs=-rng.random((n, TOKENS), dtype=np.float32) * 5,
                mask=(np.arange(TOKENS)[None, :] < lengths[:, None]).astype(np.float32),
                completions=rng.integers(0, VOCAB, (n, TOKENS)), loss=float(rng.random()), kl=0.01)
    run.finish(timeout=600)
    records = []
    for segment in sorted(Path(data_dir).rglob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            entry = json.loads(line)
            records.append(entry.get("record", entry))
    if len(records) != count:
        raise RuntimeError(f"the hook spooled {len(records)} records for {count} steps")
    return records


def bench_templates(count: int) -> list[dict]:
    rng = random.Random(0)
    return [make_record(step, rng) for step in range(count)]


def bodies_for(templates: list[dict], steps: int) -> list[bytes]:
    """Batches of BATCH steps, numbered 0..steps-1, cycling through the templates."""
    bodies = []
    for start in range(0, steps, BATCH):
        records = [{**templates[s % len(templates)], "step": s, "time": time.time()}
                   for s in range(start, min(steps, start + BATCH))]
        bodies.append(gzip.compress(json.dumps({"records": records}).encode(), 1))
    return bodies


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _backends(engine, database: str) -> dict[int, float]:
    with engine.connect() as conn:
        pids = conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}).all()
    out = {}
    for pid in pids:
        try:
            out[pid] = _cpu(psutil.Process(pid))
        except psutil.Error:  # not ours to read, or gone
            pass
    return out


def _sizes(engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {t: (conn.scalar(text(f"SELECT count(*) FROM {t}")),
                    conn.scalar(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}))
                for t in TABLES}


def _columns(engine) -> dict[str, float]:
    """Average stored size of the wide columns (after TOAST compression)."""
    with engine.connect() as conn:
        scalars = conn.scalar(text("SELECT avg(pg_column_size(packed)) FROM steps"))
        hist = conn.scalar(text("SELECT avg(pg_column_size(packed)) FROM histograms"))
        completion = conn.scalar(text("SELECT avg(pg_column_size(completion)) FROM rollouts"))
    return {"steps.packed": float(scalars), "histograms.packed": float(hist or 0),
            "rollouts.completion": float(completion or 0)}


def measure(workload: str, steps: int, runs: int, templates: list[dict]) -> dict:
    per_run = steps // runs
    bodies = bodies_for(templates, per_run)
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as db_url, \
            fadewatch_server(db_url, Path(tmp)) as url:
        server = next(p for p in psutil.Process().children() if "server" in " ".join(p.cmdline()))
        engine = create_engine(db_url)
        database = engine.url.database
        with httpx.Client(base_url=f"{url}/api/v1", timeout=120) as client:
            run_ids = [client.post("/runs", json={"project": "storage", "name": f"{workload}-{i}"}).json()["id"]
                       for i in range(runs)]
            server_cpu0, backends0 = _cpu(server), _backends(engine, database)
            started = time.perf_counter()
            for body in bodies:
                for run_id in run_ids:
                    r = client.post(f"/runs/{run_id}/steps", content=body,
                                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
                    r.raise_for_status()
            elapsed = time.perf_counter() - started
            server_cpu = _cpu(server) - server_cpu0
            backends = _backends(engine, database)
            db_cpu = sum(cpu - backends0.get(pid, 0.0) for pid, cpu in backends.items())
        stored = per_run * runs
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        live = _sizes(engine)
        columns = _columns(engine)
        with engine.connect() as conn:
            database_size = conn.scalar(text("SELECT pg_database_size(current_database())"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM FULL"))
        packed = _sizes(engine)
        engine.dispose()
    return {"workload": workload, "steps": stored, "runs": runs, "elapsed": elapsed,
            "server_cpu": server_cpu, "db_cpu": db_cpu, "live": live, "packed": packed, "columns": columns,
            "database": database_size,
            "record_json_bytes": sum(len(json.dumps(t)) for t in templates) / len(templates)}


def report(m: dict) -> None:
    n = m["steps"]
    print(f"\n{m['workload']}: {n:,} steps over {m['runs']} runs, {m['record_json_bytes']:,.0f} B of JSON per record")
    print(f"{'table':<17} {'rows/step':>10} {'bytes/step':>11} {'after VACUUM FULL':>18}")
    for t in TABLES:
        rows, size = m["live"][t]
        print(f"{t:<17} {rows / n:>10.3f} {size / n:>11,.0f} {m['packed'][t][1] / n:>18,.0f}")
    for label, tables in (("metric tables", METRIC_TABLES), ("total", TABLES)):
        total = sum(m["live"][t][1] for t in tables)
        packed = sum(m["packed"][t][1] for t in tables)
        rows = sum(m["live"][t][0] for t in tables if t not in ("runs", "layouts"))
        print(f"{label:<17} {rows / n:>10.3f} {total / n:>11,.0f} {packed / n:>18,.0f}")
    print(f"database size / stored steps: {m['database'] / n:,.0f} B (metric tables alone: "
          f"{sum(m['live'][t][1] for t in METRIC_TABLES) / n:,.0f} B; rollouts are budgeted apart)")
    print("average stored column: " + ", ".join(f"{k} {v:,.0f} B" for k, v in m["columns"].items()))
    print(f"CPU per 100-step batch: server {100_000 * m['server_cpu'] / n:.1f} ms, "
          f"PostgreSQL backends {100_000 * m['db_cpu'] / n:.1f} ms "
          f"({n / m['elapsed']:,.0f} steps/s wall, one client posting in sequence)")


def store_cpu(batches: int) -> None:
    """CPU of store_batch per 100-step batch of bench records, in process: steps and histograms, blocks."""
    from fadewatch.server.app import prepare_database
    from fadewatch.server.auth import OPEN
    from fadewatch.server.db import make_engine
    from fadewatch.server.migrate import upgrade
    from fadewatch.server.schemas import RunCreate, StepRecord
    from fadewatch.server.settings import ServerSettings
    from fadewatch.server.store import blocks as block_store
    from fadewatch.server.store.runs import create_or_resume
    from fadewatch.server.store.steps import store_batch

    spent = {"blocks": 0.0}
    add_steps = block_store.add_steps

    def timed_add_steps(*args, **kwargs):
        t0 = time.process_time()
        try:
            return add_steps(*args, **kwargs)
        finally:
            spent["blocks"] += time.process_time() - t0

    block_store.add_steps = timed_add_steps
    rng = random.Random(0)
    batches_of = [[StepRecord.model_validate(make_record(b * BATCH + i, rng)) for i in range(BATCH)]
                  for b in range(batches)]
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as db_url:
        upgrade(make_engine(db_url))
        db = prepare_database(ServerSettings(dir=Path(tmp), database_url=db_url))
        with db.transaction() as session:
            run_id = create_or_resume(session, RunCreate(project="storage", name="cpu"), OPEN)[0].id
        total = 0.0
        for records in batches_of:
            t0 = time.process_time()
            with db.transaction() as session:
                store_batch(session, run_id, records, OPEN)
            total += time.process_time() - t0
        db.engine.dispose()
    print(f"store_batch, in process, {batches} batches of {BATCH} bench records: "
          f"{1000 * total / batches:.1f} ms of CPU per batch "
          f"(steps and histograms {1000 * (total - spent['blocks']) / batches:.1f} ms, "
          f"blocks {1000 * spent['blocks'] / batches:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["hook", "bench", "both"], default="both")
    parser.add_argument("--steps", type=int, default=20_000, help="steps in all, split evenly over the runs")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--templates", type=int, default=8, help="distinct records to cycle through")
    parser.add_argument("--store-cpu", type=int, metavar="BATCHES",
                        help="only time store_batch in process over this many 100-step batches")
    args = parser.parse_args()
    if args.store_cpu:
        store_cpu(args.store_cpu)
        return
    for workload in (["hook", "bench"] if args.workload == "both" else [args.workload]):
        if workload == "hook":
            with tempfile.TemporaryDirectory() as tmp:
                templates = hook_templates(args.templates, Path(tmp))
        else:
            templates = bench_templates(args.templates)
        report(measure(workload, args.steps, args.runs, templates))


if __name__ == "__main__":
    main()
