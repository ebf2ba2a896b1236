"""Soak: many runs post step batches to one server for minutes; throughput, latency, memory, errors.

Each run is a trainer that logs `--rate` steps per second and a sender that behaves like the
hook's (client/sender.py): every `--interval` seconds it posts what has accumulated, at
most 100 steps per gzip JSON batch, and posts again at once while a backlog remains. The
records are bench/ingest.py's (30 scalars and 2 histograms of 64 bins per step). The default,
64 runs at 2 steps/s with a batch every second, offers 128 steps/s in 64 requests/s: each
run logs 10 to 100 times faster than a real RL step (seconds to minutes) and posts as often
as the hook ever does, so the load is requests more than bytes. `--rate 10` offers 640
steps/s, past what one server process takes on two shared cores (docs/benchmarks.md): the
senders then fall behind and send larger batches, as the hook does, with no errors.

    .venv/bin/python bench/soak.py                       # PostgreSQL, 64 runs, 10 minutes
    .venv/bin/python bench/soak.py --db sqlite --minutes 10
    .venv/bin/python bench/soak.py --rate 10                 # 640 steps/s offered

PostgreSQL is a fresh database on FADEWATCH_TEST_DATABASE_URL (default the local server),
dropped afterwards. The exit status is 1 on any error or when the rows stored differ from
the steps acknowledged. tests/test_soak.py runs the same load for one minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import httpx
import psutil

from fadewatch.api_client import KEEPALIVE_EXPIRY_S

sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_process, scratch_postgres  # noqa: E402
from ingest import make_record  # noqa: E402

BATCH = 100  # the hook's batch_size
MB = 1 << 20


@dataclasses.dataclass
class Tally:
    """What the senders saw, added up across runs."""

    requests: int = 0
    acked: int = 0  # steps acknowledged by a 2xx answer, each counted once
    stored: int = 0  # the server's own count of steps it stored
    duplicates: int = 0
    non_2xx: int = 0
    transport: int = 0
    first_errors: list[str] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)
    max_backlog: int = 0  # most steps a run had waiting when its sender woke
    undelivered: int = 0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.transport

    def error(self, message: str) -> None:
        if len(self.first_errors) < 5:
            self.first_errors.append(message)


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0


def encode(records: list[dict]) -> bytes:
    # As ApiClient.post_steps: one {"records": [...]} document, gzip level 5.
    return gzip.compress(json.dumps({"records": records}, separators=(",", ":")).encode(), compresslevel=5)


async def post(client: httpx.AsyncClient, method: str, path: str, tally: Tally, **kwargs) -> httpx.Response | None:
    """One request, counted; None on an error (already counted and kept)."""
    started = time.perf_counter()
    try:
        r = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        tally.transport += 1
        tally.error(f"{method} {path}: {type(exc).__name__}: {exc}")
        return None
    finally:
        tally.requests += 1
    tally.latencies.append(time.perf_counter() - started)
    if not r.is_success:
        tally.non_2xx += 1
        tally.error(f"{method} {path}: HTTP {r.status_code}: {r.text[:200]}")
        return None
    return r


async def run_one(url: str, index: int, runs: int, tally: Tally, *, rate: float, interval: float,
                  start: float, deadline: float, drain_until: float) -> tuple[int, int]:
    """One run from creation to its final status; returns (run id, steps acknowledged)."""
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=60,
                                 limits=httpx.Limits(max_connections=1, keepalive_expiry=KEEPALIVE_EXPIRY_S)) as client:
        created = None
        while created is None and time.perf_counter() < drain_until:
            created = await post(client, "POST", "/runs", tally,
                                 json={"project": "soak", "name": f"soak-{index}-{time.time_ns()}"})
            if created is None:
                await asyncio.sleep(1.0)
        if created is None:
            return -1, 0
        run_id = created.json()["id"]
        # Senders are spread over one interval, as independent trainers would be.
        trainer_start = start + interval * index / runs
        logged_at_end = int((deadline - trainer_start) * rate)
        acked = 0
        next_send = trainer_start
        while True:
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            woke = time.perf_counter()
            logged = min(logged_at_end, int((woke - trainer_start) * rate))
            tally.max_backlog = max(tally.max_backlog, logged - acked)
            n = min(logged - acked, BATCH)
            if n > 0:
                body = encode([make_record(step, rng) for step in range(acked, acked + n)])
                r = await post(client, "POST", f"/runs/{run_id}/steps", tally, content=body,
                               headers={"content-type": "application/json", "content-encoding": "gzip"})
                if r is None:  # the hook backs off and sends the same steps again
                    if time.perf_counter() > drain_until:
                        break
                    next_send = time.perf_counter() + 1.0
                    continue
                answer = r.json()
                tally.stored += answer["stored"]
                tally.duplicates += answer["duplicates"]
                acked += n
                tally.acked += n
            if acked >= logged_at_end or time.perf_counter() > drain_until:
                break
            backlog = min(logged_at_end, int((time.perf_counter() - trainer_start) * rate)) - acked
            next_send = time.perf_counter() if backlog >= BATCH else woke + interval
        tally.undelivered += logged_at_end - acked
        await post(client, "PATCH", f"/runs/{run_id}", tally, json={"status": "finished"})
        return run_id, acked


async def watch_memory(proc: psutil.Process, every: float, start: float, samples: list[dict],
                       tally: Tally, on_sample: Callable[[dict], None] | None) -> None:
    while True:
        await asyncio.sleep(every - (time.perf_counter() - start) % every)
        samples.append(sample(proc, start, tally))
        if on_sample:
            on_sample(samples[-1])


def sample(proc: psutil.Process, start: float, tally: Tally) -> dict:
    cpu = proc.cpu_times()
    return {"t": time.perf_counter() - start, "rss": proc.memory_info().rss, "cpu_s": cpu.user + cpu.system,
            "requests": tally.requests, "acked": tally.acked, "errors": tally.errors}


async def soak(url: str, pid: int, *, runs: int = 64, seconds: float = 600.0, rate: float = 2.0,
               interval: float = 1.0, rss_every: float = 60.0, drain_s: float = 60.0,
               on_sample: Callable[[dict], None] | None = None) -> dict:
    """Drive `runs` runs against the server at `url` (process `pid`) for `seconds`; the figures."""
    proc = psutil.Process(pid)
    tally = Tally()
    start = time.perf_counter()
    samples = [sample(proc, start, tally)]
    load_before = os.getloadavg()
    watcher = asyncio.create_task(watch_memory(proc, rss_every, start, samples, tally, on_sample))
    deadline = start + seconds
    results = await asyncio.gather(*(
        run_one(url, i, runs, tally, rate=rate, interval=interval, start=start, deadline=deadline,
                drain_until=deadline + drain_s)
        for i in range(runs)
    ))
    finished = time.perf_counter()
    watcher.cancel()
    samples.append(sample(proc, start, tally))
    tally.latencies.sort()
    return {
        "runs": runs, "seconds": seconds, "rate": rate, "interval": interval,
        "run_steps": {run_id: acked for run_id, acked in results if run_id >= 0},
        "tally": tally, "samples": samples, "drain_s": max(0.0, finished - deadline),
        "elapsed_s": finished - start, "load_before": load_before, "load_after": os.getloadavg(),
    }


def stored_rows(db_url: str, run_ids: list[int]) -> dict[int, dict]:
    """Per run: step rows, distinct steps, lowest and highest step, histogram rows."""
    from sqlalchemy import bindparam, text

    from fadewatch.server.db import make_engine

    engine = make_engine(db_url)
    ids = bindparam("ids", expanding=True)
    try:
        with engine.connect() as conn:
            steps = conn.execute(text(
                "SELECT run_id, count(*), count(DISTINCT step), min(step), max(step) FROM steps "
                "WHERE run_id IN :ids GROUP BY run_id").bindparams(ids), {"ids": run_ids}).all()
            hists = dict(conn.execute(text(
                "SELECT run_id, count(*) FROM histograms WHERE run_id IN :ids GROUP BY run_id"
            ).bindparams(ids), {"ids": run_ids}).all())
    finally:
        engine.dispose()
    return {run_id: {"rows": n, "distinct": d, "min": lo, "max": hi, "histograms": hists.get(run_id, 0)}
            for run_id, n, d, lo, hi in steps}


def exactly_once(result: dict, rows: dict[int, dict]) -> list[str]:
    """Each run's acknowledged steps 0..n-1 stored once each, with both histograms; the problems."""
    problems = []
    for run_id, acked in result["run_steps"].items():
        got = rows.get(run_id, {"rows": 0, "distinct": 0, "min": None, "max": None, "histograms": 0})
        want = {"rows": acked, "distinct": acked, "min": 0 if acked else None,
                "max": acked - 1 if acked else None, "histograms": 2 * acked}
        if got != want:
            problems.append(f"run {run_id}: stored {got}, acknowledged {want}")
    return problems


def print_sample(s: dict) -> None:
    print(f"  {s['t']:>6.0f} s  server RSS {s['rss'] / MB:7.1f} MB  CPU {s['cpu_s']:7.1f} s  "
          f"requests {s['requests']:>8,}  steps {s['acked']:>9,}  errors {s['errors']}", flush=True)


def report(result: dict, rows: dict[int, dict], problems: list[str]) -> None:
    t, samples = result["tally"], result["samples"]
    lat = t.latencies
    offered = result["runs"] * result["rate"]
    rss = [s["rss"] for s in samples]
    warm = samples[1] if len(samples) > 2 else samples[-1]
    cpu_s = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    stored = sum(r["rows"] for r in rows.values())
    # Keeping up: every step logged before the end acknowledged within a few batch intervals of it.
    keeps_up = t.undelivered == 0 and result["drain_s"] <= 5 * result["interval"]
    print(f"requests            {t.requests:,} ({t.requests / result['elapsed_s']:.1f}/s)")
    print(f"steps acknowledged  {t.acked:,} (server counted {t.stored:,} stored, {t.duplicates} duplicates)")
    print(f"throughput          {t.acked / result['seconds']:,.0f} steps/s (offered {offered:,.0f})")
    print(f"latency             p50 {1000 * quantile(lat, 0.5):.1f} ms  p99 {1000 * quantile(lat, 0.99):.1f} ms  "
          f"max {1000 * (lat[-1] if lat else 0):.1f} ms")
    print(f"errors              {t.errors} (non-2xx {t.non_2xx}, transport {t.transport})")
    for message in t.first_errors:
        print(f"    {message}")
    print(f"server RSS          start {rss[0] / MB:.1f} MB, at {warm['t']:.0f} s {warm['rss'] / MB:.1f} MB, "
          f"end {rss[-1] / MB:.1f} MB, peak {max(rss) / MB:.1f} MB; growth after {warm['t']:.0f} s "
          f"{(rss[-1] - warm['rss']) / MB:+.1f} MB")
    print(f"server CPU          {cpu_s:.0f} s in {result['elapsed_s']:.0f} s ({cpu_s / result['elapsed_s']:.2f} cores); "
          f"load average {result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after (2 cores shared)")
    print(f"rows stored         {stored:,} steps ({'=' if stored == t.acked else '!='} acknowledged), "
          f"{sum(r['histograms'] for r in rows.values()):,} histograms")
    for problem in problems[:5]:
        print(f"    {problem}")
    print(f"keeps up            {'yes' if keeps_up else 'NO'}: largest backlog {t.max_backlog} steps "
          f"({t.max_backlog / result['rate']:.1f} s of training), drained in {result['drain_s']:.1f} s, "
          f"{t.undelivered} steps undelivered")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2.0, help="steps per second each run logs")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a run's batches")
    parser.add_argument("--rss-every", type=float, default=60.0, help="seconds between memory samples")
    args = parser.parse_args()
    print(f"soak: {args.runs} runs x {args.rate:g} steps/s ({args.runs * args.rate:,.0f} steps/s offered), "
          f"a batch per run every {args.interval:g} s (at most {BATCH} steps), {args.minutes:g} min on {args.db}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="fadewatch-soak-") as tmp:
        log = Path(tmp) / "server.log"
        db = scratch_postgres() if args.db == "postgresql" else nullcontext(f"sqlite:///{Path(tmp) / 'soak.db'}")
        with db as db_url, fadewatch_process(db_url, Path(tmp), log=log) as (url, proc):
            result = asyncio.run(soak(url, proc.pid, runs=args.runs, seconds=60 * args.minutes, rate=args.rate,
                                      interval=args.interval, rss_every=args.rss_every, on_sample=print_sample))
            rows = stored_rows(db_url, list(result["run_steps"]))
        problems = exactly_once(result, rows)
        report(result, rows, problems)
        server_log = log.read_text(errors="replace").strip()
        if server_log:
            print("server log (warnings and errors):\n" + server_log[-3000:])
    return 1 if result["tally"].errors or problems or len(result["run_steps"]) != args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
