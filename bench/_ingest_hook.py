"""The hook's real records through the server, and a raw COPY of the same records, for bench/ingest.py.

Records are made by `fadewatch.init(mode="offline")` + `run.log(...)` (bench/storage.py's
hook_templates: a standard GRPO step of 512 prompts x 8, 512 tokens) and posted without their
rollouts (a step's rollouts are up to 64 KB of text, measured by bench/rollouts.py): what is
left is 47 scalars and 5 histograms a step. Both sides use the same records, 4 threads
(one run and one connection each) and batches of 500 steps.

The raw COPY is the database's own speed for those records: one JSONB row per step and one
per histogram, into two tables without indexes, one transaction per batch, the rows
serialised with orjson inside the timed loop.

Throughput on a shared machine is noisy, so each case also reports the CPU it cost per
100 steps: the server's processes, and PostgreSQL's backends of the scratch database.
"""

from __future__ import annotations

import gzip
import math
import statistics
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil

from _ingest_profile import breakdown
from _ingest_profile import report as report_breakdown
from _servers import fadewatch_process

THREADS = 4
BATCH = 500


def hook_records(templates: int, data_dir: Path) -> list[dict]:
    from storage import hook_templates

    return [{k: v for k, v in r.items() if k != "rollouts"} for r in hook_templates(templates, data_dir)]


def numbered(templates: list[dict], batches: int) -> list[list[dict]]:
    """`batches` batches of BATCH steps numbered from 0, cycling through the templates."""
    now = time.time()
    return [[{**templates[s % len(templates)], "step": s, "time": now + s * 1e-3}
             for s in range(b * BATCH, (b + 1) * BATCH)] for b in range(batches)]


def gzip_bodies(batches: list[list[dict]]) -> list[bytes]:
    return [gzip.compress(orjson.dumps({"records": records}), 1) for records in batches]


class CpuMeter:
    """User+system CPU seconds of the server's processes and of the database's backends."""

    def __init__(self, db_url: str, server_pid: int | None = None):
        self.dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
        self.server_pid = server_pid

    def _server(self) -> float:
        return 0.0 if self.server_pid is None else sum(cpu_by_process(self.server_pid).values())

    def _backends(self) -> dict[int, float]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                               "AND pid <> pg_backend_pid()")]
        out = {}
        for pid in pids:
            try:
                out[pid] = _cpu(psutil.Process(pid))
            except psutil.Error:  # gone, or not ours to read
                pass
        return out

    def start(self) -> None:
        self.server0, self.backends0 = self._server(), self._backends()

    def stop(self, row: dict, steps: int, backends: dict[int, float] | None = None) -> None:
        """Adds the CPU milliseconds per 100 steps since start(); `backends` read before they closed."""
        server = self._server() - self.server0
        now = backends if backends is not None else self._backends()
        db = sum(cpu - self.backends0.get(pid, 0.0) for pid, cpu in now.items())
        row["server_ms_per_100"] = 100_000 * server / max(steps, 1)
        row["db_ms_per_100"] = 100_000 * db / max(steps, 1)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of a server's process and of its workers, by pid."""
    root = psutil.Process(pid)
    out = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            out[proc.pid] = _cpu(proc)
        except psutil.Error:  # a worker that has just gone
            pass
    return out


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def post_case(url: str, bodies: list[bytes], seconds: float, rate: float | None = None,
              meter: CpuMeter | None = None) -> dict:
    """THREADS runs posting gzip batches, as fast as answered or offering `rate` steps/s in all."""
    with httpx.Client(base_url=f"{url}/api/v1", timeout=120) as admin:
        run_ids = [admin.post("/runs", json={"project": "bench-hook", "name": f"hook-{i}-{time.time_ns()}"}).json()["id"]
                   for i in range(THREADS)]
    latencies: list[float] = []
    stored = [0] * THREADS
    errors = [0] * THREADS
    interval = THREADS * BATCH / rate if rate else 0.0
    start_at = time.perf_counter() + 0.2
    deadline = start_at + seconds

    def worker(index: int) -> None:
        next_at = start_at + interval * index / THREADS
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        with httpx.Client(base_url=f"{url}/api/v1", timeout=120) as client:
            for body in bodies:
                if interval:
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                if time.perf_counter() > deadline:
                    return
                began = time.perf_counter()
                r = client.post(f"/runs/{run_ids[index]}/steps", content=body, headers=headers)
                latencies.append(time.perf_counter() - began)
                if r.status_code == 200:
                    stored[index] += r.json()["stored"]
                else:
                    errors[index] += 1

    if meter:
        meter.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start_at
    row = {"mode": f"paced {rate:,.0f}/s" if rate else "max", "runs": THREADS, "steps_per_s": sum(stored) / elapsed,
           "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * _percentile(latencies, 0.99),
           "batches": len(latencies), "errors": sum(errors)}
    if meter:
        meter.stop(row, sum(stored))
    return row


_RAW_TABLES = """
CREATE TABLE raw_steps (run_id int, step bigint, time float8, scalars jsonb, nonfinite jsonb);
CREATE TABLE raw_histograms (run_id int, step bigint, name text, data jsonb);
"""


def copy_case(db_url: str, batches: list[list[dict]], seconds: float) -> dict:
    """THREADS connections COPYing the same batches (one transaction each) into plain tables."""
    import psycopg

    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_RAW_TABLES)
    stored = [0] * THREADS
    meter = CpuMeter(db_url)
    opened = threading.Barrier(THREADS + 1)
    finished = threading.Barrier(THREADS + 1)
    measured = threading.Event()
    start_at = time.perf_counter() + 1.0
    deadline = start_at + seconds

    def worker(index: int) -> None:
        with psycopg.connect(dsn) as conn:
            opened.wait()
            time.sleep(max(0.0, start_at - time.perf_counter()))
            for records in batches:
                if time.perf_counter() > deadline:
                    break
                with conn.cursor() as cur:
                    with cur.copy("COPY raw_steps (run_id, step, time, scalars, nonfinite) FROM STDIN") as copy:
                        for r in records:
                            nonfinite = r.get("nonfinite")
                            copy.write_row((index, r["step"], r["time"], orjson.dumps(r["scalars"]).decode(),
                                            orjson.dumps(nonfinite).decode() if nonfinite else None))
                    with cur.copy("COPY raw_histograms (run_id, step, name, data) FROM STDIN") as copy:
                        for r in records:
                            for name, h in r["histograms"].items():
                                copy.write_row((index, r["step"], name, orjson.dumps(h).decode()))
                conn.commit()
                stored[index] += len(records)
            finished.wait()
            measured.wait()  # the connection stays open until its backend's CPU is read

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    opened.wait()
    meter.start()
    finished.wait()
    elapsed = time.perf_counter() - start_at
    backends = meter._backends()
    measured.set()
    for t in threads:
        t.join()
    row = {"mode": "raw COPY", "runs": THREADS, "steps_per_s": sum(stored) / elapsed}
    meter.stop(row, sum(stored), backends)
    return row


def bench_hook(scratch, templates: int, seconds: float, paced: float, data_dir: Path, workers: int = 1) -> list[dict]:
    """The hook's records: posted (max, then paced), and COPYed; prints each row and the ratio."""
    records = hook_records(templates, data_dir / "templates")
    # Enough distinct batches for up to ~4,000 steps/s per thread.
    batches = numbered(records, max(4, int(seconds * 4_000 / BATCH) + 2))
    bodies = gzip_bodies(batches)
    print(f"hook workload: {len(records[0]['scalars'])} scalars + {len(records[0]['histograms'])} histograms per step "
          f"(rollouts left out), {BATCH} steps per gzip batch ({len(bodies[0]) / 1e3:,.0f} KB), {THREADS} threads",
          flush=True)
    with scratch() as db_url:
        report_breakdown(breakdown(db_url, records, batches=20))
    rows = []
    with scratch() as db_url:
        with fadewatch_process(db_url, data_dir, workers=workers) as (url, proc):
            meter = CpuMeter(db_url, proc.pid)
            for rate in (None, paced):
                rows.append(post_case(url, bodies, seconds, rate, meter))
                print(_fmt(rows[-1]), flush=True)
        rows.append(copy_case(db_url, batches, seconds))
        print(_fmt(rows[-1]), flush=True)
    ratio = rows[0]["steps_per_s"] / rows[-1]["steps_per_s"]
    print(f"hook records: the server stores {ratio:.0%} of the raw COPY's step rate (target: at least 30%)", flush=True)
    return rows


def _fmt(row: dict) -> str:
    line = f"{'hook+pg':<11} {row['mode']:<14} runs={row['runs']:>3}  {row['steps_per_s']:>9,.0f} steps/s"
    if "p99_ms" in row:
        line += (f"  p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms  "
                 f"batches {row['batches']:>5}  errors {row['errors']}")
    return line + (f"  CPU per 100 steps: server {row['server_ms_per_100']:.0f} ms, "
                   f"PostgreSQL {row['db_ms_per_100']:.0f} ms")
