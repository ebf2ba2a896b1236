"""Where the server's CPU goes per 100-step batch of the hook's records, measured in-process.

The ingest path of `fadewatch server` called directly (no HTTP), on a scratch PostgreSQL:
gzip decoding, parsing and validation (parse_batch + check_batch), storing the rows,
the step blocks (store.blocks.add_steps) and the alert rules (alerts evaluate). Times are
the calling thread's CPU time, not wall time, so they hold up on a busy machine better
than rates do; the database's own work is not in them.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
import zlib
from collections import defaultdict

import orjson

BATCH = 100


def _timed(module, name: str, totals: dict[str, float], label: str) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] += time.thread_time() - started

    setattr(module, name, wrapper)


def breakdown(db_url: str, records: list[dict], batches: int) -> dict[str, float]:
    """CPU milliseconds per BATCH-step batch, by part."""
    from fadewatch.server import ingest as ingest_module
    from fadewatch.server.app import create_app
    from fadewatch.server.auth import OPEN
    from fadewatch.server.limits import check_batch, parse_batch
    from fadewatch.server.schemas import RunCreate
    from fadewatch.server.settings import ServerSettings
    from fadewatch.server.store import blocks
    from fadewatch.server.store.runs import create_or_resume

    subprocess.run([sys.executable, "-m", "fadewatch.cli", "db", "upgrade", "--db", db_url], check=True,
                   capture_output=True)
    settings = ServerSettings(database_url=db_url)
    app = create_app(settings)
    totals: dict[str, float] = defaultdict(float)
    _timed(blocks, "add_steps", totals, "step blocks")
    _timed(ingest_module, "evaluate", totals, "alert rules")
    with app.state.database.transaction() as session:
        run_id = create_or_resume(session, RunCreate(project="profile", name="hook"), OPEN)[0].id
    bodies = []
    for b in range(batches + 1):
        steps = [{**records[s % len(records)], "step": s, "time": 1.7e9 + s} for s in range(b * BATCH, (b + 1) * BATCH)]
        bodies.append(gzip.compress(orjson.dumps({"records": steps}), 1))
    service = app.state.ingest
    for i, body in enumerate(bodies):
        if i == 1:  # the first batch warms caches and prepared statements: not counted
            totals.clear()
        started = time.thread_time()
        plain = zlib.decompress(body, wbits=31)
        totals["gzip"] += time.thread_time() - started
        started = time.thread_time()
        batch = parse_batch(plain, "application/json")
        check_batch(batch, settings)
        totals["parse and validate"] += time.thread_time() - started
        started = time.thread_time()
        service.ingest(run_id, batch.records, OPEN)
        totals["ingest"] += time.thread_time() - started
    app.state.database.engine.dispose()
    per_batch = {k: 1000 * v / batches for k, v in totals.items()}
    per_batch["rows (steps, histograms, run)"] = (per_batch.pop("ingest") - per_batch["step blocks"]
                                                  - per_batch["alert rules"])
    return per_batch


def report(parts: dict[str, float]) -> None:
    order = ["gzip", "parse and validate", "rows (steps, histograms, run)", "step blocks", "alert rules"]
    total = sum(parts.values())
    print(f"server CPU per {BATCH}-step batch of hook records, in-process: {total:.1f} ms = "
          + ", ".join(f"{k} {parts[k]:.1f}" for k in order), flush=True)
