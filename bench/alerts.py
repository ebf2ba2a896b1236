"""Alerts: delivery latency and what alerting costs at ingest (detection quality: bench/detection.py).

    .venv-bench/bin/python bench/alerts.py                  # both parts, SQLite and PostgreSQL
    .venv-bench/bin/python bench/alerts.py --part latency --alerts 500
    .venv-bench/bin/python bench/alerts.py --part cost
    .venv-bench/bin/python bench/alerts.py --part rules

(a) Latency: a `fadewatch server` process with one webhook channel pointing at a receiver in
this process and a threshold rule with for_steps 1. Each round posts one step that trips the
rule and waits for the signed webhook; the latency is from the start of the ingest POST to
the receipt of the message (same clock). The next step clears the rule, and its resolved
message is awaited too, so every round starts with an empty queue.

(b) Cost: what evaluating the default rules adds to storing a batch, in process (no HTTP):
batches of 100 steps carrying the hook's 40-odd scalars, stored with and without the
engine (alternating batch by batch), median over batches.

(c) Rules: the detectors alone, without the database: each default rule fed 5,000 steps of
the same scalars through `advance`, the median of 5 repetitions, in microseconds of CPU time
per step.
On a busy machine the database-bound figures of (b) move by more than alerting costs; this
part compares versions of the rules steadily.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server, scratch_postgres  # noqa: E402

SERVER_ENV = {"FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS": "true"}


class Receiver:
    """Webhook receiver: the receipt time of each message, by the step it reports."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, int], float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.perf_counter()
                data = json.loads(body)["data"]
                self.send_response(204)
                self.end_headers()
                with receiver.cond:
                    receiver.arrived[(data["event"], data["step"])] = now
                    receiver.cond.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: tuple[str, int], timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrived, timeout):
                raise RuntimeError(f"no {key[0]} message for step {key[1]} within {timeout} s")
            return self.arrived[key]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(db_url: str, alerts: int) -> dict:
    rx = Receiver()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as tmp, fadewatch_server(db_url, Path(tmp), SERVER_ENV) as url, \
            httpx.Client(base_url=f"{url}/api/v1", timeout=30) as api:
        api.post("/projects/bench/channels", json={"name": "rx", "kind": "webhook", "url": rx.url,
                                                   "secret": secret}).raise_for_status()
        api.put("/projects/bench/rules/trip", json={"metric": "x", "condition": "> 0"}).raise_for_status()
        run = api.post("/runs", json={"project": "bench", "name": f"latency-{time.time_ns()}"}).json()["id"]
        took = []
        for i in range(alerts):
            fire, clear = 2 * i, 2 * i + 1
            started = time.perf_counter()
            api.post(f"/runs/{run}/steps", json={"records": [{"step": fire, "scalars": {"x": 1.0}}]}).raise_for_status()
            took.append(rx.wait(("firing", fire)) - started)
            api.post(f"/runs/{run}/steps", json={"records": [{"step": clear, "scalars": {"x": 0.0}}]}).raise_for_status()
            rx.wait(("resolved", clear))
    rx.server.shutdown()
    ms = [t * 1000 for t in took]
    return {"alerts": alerts, "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99), "max_ms": max(ms)}


def run_latency(args) -> None:
    print(f"(a) ingest POST of the triggering step -> webhook received, {args.alerts} alerts per database")
    print("| database | alerts | p50 | p99 | max |\n|---|---|---|---|---|")
    for db in args.db:
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                r = latency(f"sqlite:///{Path(tmp) / 'bench.db'}", args.alerts)
        else:
            with scratch_postgres() as pg:
                r = latency(pg, args.alerts)
        print(f"| {db} | {r['alerts']} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms |",
              flush=True)


def _cost(db_url: str, batches: int) -> tuple[float, float]:
    """Median ms per batch without and with alerting, alternating batch by batch (so a busy
    machine slows both alike)."""
    import random

    from fadewatch.server.app import prepare_database
    from fadewatch.server.auth import OPEN
    from fadewatch.server.schemas import RunCreate, StepRecord
    from fadewatch.server.settings import ServerSettings
    from fadewatch.server.alerts.evaluation.engine import AlertContext
    from fadewatch.server.http.metrics import ServerMetrics
    from fadewatch.server.ingest import IngestService
    from fadewatch.server.store import runs, steps

    names = ["entropy/mean", "entropy/cov_logp_adv", "sign/balance", "sign/m_pos", "sign/m_neg",
             "difficulty/no_signal_frac", "difficulty/ess_frac", "difficulty/solve_rate", "difficulty/peak",
             "diversity/distinct_frac", "diversity/pass_gap", "adv/kurtosis", "adv/max_abs_over_std",
             "geometry/rank1_frac"] + [f"other/{i}" for i in range(28)]
    rng = random.Random(0)
    took: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        db = prepare_database(ServerSettings(dir=Path(tmp), database_url=db_url))
        service = IngestService(db, AlertContext(), ServerMetrics())
        with db.write_transaction() as session:
            run_ids = {on: runs.create_or_resume(session, RunCreate(project="cost", name=f"alerting-{on}"), OPEN)[0].id
                       for on in (False, True)}
        try:
            for b in range(2 * batches):
                on = b % 2 == 1
                records = [StepRecord(step=b * 100 + i, scalars={n: rng.uniform(0.2, 0.9) for n in names})
                           for i in range(100)]
                started = time.perf_counter()
                if on:  # the ingest service: store, then evaluate in a savepoint
                    service.ingest(run_ids[on], records, OPEN)
                else:  # the same transaction, storing only
                    with db.write_transaction() as session:
                        steps.store_batch(session, run_ids[on], records, OPEN)
                took[on].append(time.perf_counter() - started)
        finally:
            db.engine.dispose()
    return statistics.median(took[False]) * 1000, statistics.median(took[True]) * 1000


def run_cost(args) -> None:
    print("(b) storing a batch of 100 steps (42 scalars each), in process, median of 100 batches each")
    print("| database | without alerting | with the default rules | per step |\n|---|---|---|---|")
    for db in args.db:
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                off, on = _cost(f"sqlite:///{Path(tmp) / 'cost.db'}", 100)
        else:
            with scratch_postgres() as pg:
                subprocess.run([sys.executable, "-m", "fadewatch.cli", "db", "upgrade", "--db", pg],
                               check=True, capture_output=True)
                off, on = _cost(pg, 100)
        print(f"| {db} | {off:.1f} ms | {on:.1f} ms | +{(on - off) * 10:.0f} µs |", flush=True)


def run_rules(args) -> None:
    import random

    from fadewatch.server.alerts.evaluation.machine import Track, advance
    from fadewatch.server.alerts.evaluation.compiled import compile_rule
    from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES

    names = ["entropy/mean", "entropy/cov_logp_adv", "sign/balance", "sign/m_pos", "sign/m_neg",
             "difficulty/no_signal_frac", "difficulty/ess_frac", "difficulty/solve_rate", "difficulty/peak",
             "diversity/distinct_frac", "diversity/pass_gap", "adv/kurtosis", "adv/max_abs_over_std",
             "geometry/rank1_frac"] + [f"other/{i}" for i in range(28)]
    rng = random.Random(0)
    rows = [{n: rng.uniform(0.2, 0.9) for n in names} for _ in range(5000)]
    print("(c) the default rules alone: CPU microseconds per step (median of 5 passes over 5,000 steps)")
    print("| rule | µs per step |\n|---|---|")
    total = 0.0
    for spec in DEFAULT_RULES:
        rule = compile_rule(spec, "bench")
        took = []
        for _ in range(5):
            track = Track.for_rule(rule, "bench")
            started = time.process_time()  # CPU time: steadier than wall time on a shared machine
            for i, scalars in enumerate(rows):
                advance(rule, track, i, scalars, None, 0.0)
            took.append((time.process_time() - started) / len(rows) * 1e6)
        total += statistics.median(took)
        print(f"| {spec.name} | {statistics.median(took):.1f} |", flush=True)
    print(f"| all | {total:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["latency", "cost", "rules", "all"], default="all")
    parser.add_argument("--alerts", type=int, default=300, help="latency: alerts per database")
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.part in ("latency", "all"):
        run_latency(args)
        print()
    if args.part in ("cost", "all"):
        run_cost(args)
        print()
    if args.part in ("rules", "all"):
        run_rules(args)


if __name__ == "__main__":
    main()
