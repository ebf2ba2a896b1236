"""The long API fuzz: schemathesis against a fadewatch server of its own, open and with a token.

    python bench/fuzz.py                       # 150 examples per operation and phase, SQLite
    python bench/fuzz.py --max-examples 1000 --db postgresql

For each mode the script starts `fadewatch server` on a free port (alert delivery off,
so nothing leaves the machine), seeds a run with data, and runs `schemathesis run` with
the examples, coverage, fuzzing and stateful phases and the suite's checks (no 5xx;
status code, content type and body as documented). The request counts are the server's
own (its Prometheus counters), so they include every request schemathesis sent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _servers import fadewatch_server, scratch_postgres  # noqa: E402

from tests.support.fuzzing import PROJECT, PROJECT_ENV, RUN_IDS_ENV, seed_run  # noqa: E402

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def status_counts(url: str) -> Counter:
    """Requests the server answered, by status code, from its own counters."""
    counts: Counter = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        if family.name == "fadewatch_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["status"]] += int(sample.value)
    return counts


def create_token(db_url: str, data_dir: Path) -> str:
    cli = [sys.executable, "-m", "fadewatch.cli"]
    env = {**os.environ, "FADEWATCH_DIR": str(data_dir)}
    subprocess.run([*cli, "db", "upgrade", "--db", db_url], check=True, capture_output=True, env=env)
    out = subprocess.run([*cli, "token", "create", "--project", PROJECT, "--name", "fuzz", "--db", db_url],
                         check=True, capture_output=True, text=True, env=env).stdout
    return next(word for word in out.split() if word.startswith("fw_"))


def fuzz_one(mode: str, db_url: str, data_dir: Path, args) -> dict:
    headers = {}
    if mode == "token":
        headers = {"Authorization": f"Bearer {create_token(db_url, data_dir)}"}
    env = {"FADEWATCH_ALERT_DELIVERY_ENABLED": "false", "FADEWATCH_ALERT_DELIVERY_TIMEOUT_S": "1"}
    with fadewatch_server(db_url, data_dir, env=env) as url:
        run_id = seed_run(url, headers)
        before = status_counts(url)
        report = data_dir / "schemathesis.json"
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{url}/api/v1/openapi.json", "--url", url,
            "--checks", CHECKS, "--max-examples", str(args.max_examples), "--phases", args.phases,
            "--workers", str(args.workers), "--generation-database", "none", "--request-timeout", "30",
            "--continue-on-failure", "--no-color", "--report", "json", "--report-json-path", str(report),
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        fuzz_env = {**os.environ, "SCHEMATHESIS_HOOKS": "_fuzz_hooks", RUN_IDS_ENV: str(run_id),
                    PROJECT_ENV: PROJECT, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=fuzz_env, cwd=data_dir)
        wall = time.perf_counter() - started
        after = status_counts(url)
    counts = after - before
    result = json.loads(report.read_text()) if report.exists() else {}
    if not result:
        print(done.stdout[-4000:], done.stderr[-4000:], file=sys.stderr)
    return {"mode": mode, "wall_s": wall, "counts": counts, "report": result, "output": done.stdout}


def print_result(r: dict) -> None:
    counts, report = r["counts"], r["report"]
    total = sum(counts.values())
    server_errors = sum(n for code, n in counts.items() if code.startswith("5"))
    failures = report.get("failures", [])
    schema = sum(f["count"] for f in failures if f["code"] in ("ST103", "ST104", "ST108"))
    print(f"\n== {r['mode']} mode ==")
    print(f"requests made        {total}")
    print("by status            " + ", ".join(f"{c}: {n}" for c, n in sorted(counts.items()) if n))
    print(f"5xx answers          {server_errors}")
    print(f"test cases           {report.get('test_cases', {}).get('generated', '?')}"
          f" generated, {report.get('operations', {}).get('tested', '?')} operations")
    print(f"schema failures      {schema}")
    for f in failures:
        print(f"  {f['code']} {f['title']}: {f['count']} in {', '.join(f['operations'])}")
    for e in report.get("errors", []):
        print(f"  fuzzer error: {json.dumps(e)[:300]}")
    print(f"wall time            {r['wall_s']:.0f} s")
    if failures:
        # The fuzzer's own account, with a curl line per failing request.
        start = r["output"].find("FAILURES")
        print(r["output"][start:start + 6000])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-examples", type=int, default=150, help="per operation and phase")
    p.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--modes", default="open,token")
    args = p.parse_args()
    results = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"fadewatch-fuzz-{mode}-") as tmp:
            if args.db == "sqlite":
                results.append(fuzz_one(mode, f"sqlite:///{Path(tmp) / 'fuzz.db'}", Path(tmp), args))
            else:
                with scratch_postgres() as url:
                    results.append(fuzz_one(mode, url, Path(tmp), args))
    print(f"fadewatch API fuzz: {args.db}, --max-examples {args.max_examples}, phases {args.phases}")
    for r in results:
        print_result(r)
    bad = any(sum(n for c, n in r["counts"].items() if c.startswith("5")) or r["report"].get("failures")
              or r["report"].get("errors") for r in results)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
