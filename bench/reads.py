"""Reads of one long run: a series of all its keys and a histogram matrix, server-side.

Builds one run of --steps steps (1,000,000 by default) in a PostgreSQL database directly
through the store layer (store_batch, as ingest calls it, in batches of 5,000, without
HTTP), each step with 43 scalars and two 64-bin histograms (cycling through 997 distinct steps), then times what the run page
asks for: GET series of every key with max_points 500, and GET histograms with 200 columns
(the store call and the answer's JSON), cold (first) and warm (median of --repeat).

    .venv/bin/python bench/reads.py                                   # scratch database, dropped after
    .venv/bin/python bench/reads.py --db postgresql+psycopg://postgres@127.0.0.1:5432/reads_1m --keep
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _servers import scratch_postgres  # noqa: E402

SCALARS = 43
BINS = 64
BATCH = 5000
HISTOGRAMS = ("advantages", "entropy")


def _templates(count: int, rng: np.random.Generator) -> list[tuple[dict, dict]]:
    """(scalars, histograms) of `count` distinct steps, which the run's steps cycle through."""
    keys = [f"metric/{i:02d}" for i in range(SCALARS)]
    values = rng.normal(size=(count, SCALARS)).tolist()
    counts = rng.integers(0, 200, size=(count, len(HISTOGRAMS), BINS)).astype(float)
    sums = rng.normal(0, 10, size=(count, len(HISTOGRAMS))).tolist()
    out = []
    for i in range(count):
        hists = {}
        for j, name in enumerate(HISTOGRAMS):
            c = counts[i, j]
            hists[name] = {"lo": -4.0, "hi": 4.0, "bins": BINS, "counts": c.tolist(), "underflow": 3.0,
                           "overflow": 1.0, "count": float(c.sum()) + 4.0, "sum": sums[i][j], "sum_sq": 4000.0,
                           "min": -4.5, "max": 4.2, "quantiles": {"0.05": -2.0, "0.5": 0.0, "0.95": 2.0}}
        out.append((dict(zip(keys, values[i])), hists))
    return out


def _records(first: int, count: int, templates: list[tuple[dict, dict]]):
    from fadewatch.server.schemas import StepRecord

    # Built without validation: the records are well formed, and the bench times storage.
    return [StepRecord.model_construct(step=s, time=1.7e9 + s, scalars=templates[s % len(templates)][0],
                                       histograms=templates[s % len(templates)][1], samples=None, rollouts=None,
                                       nonfinite=None)
            for s in range(first, first + count)]


def build(db, steps: int) -> int:
    """The run's id, storing its steps unless a run of that many is there already."""
    from fadewatch.server.auth import OPEN
    from fadewatch.server.schemas import RunCreate
    from fadewatch.server.store.runs import create_or_resume
    from fadewatch.server.store.steps import store_batch

    with db.transaction() as session:
        run, _ = create_or_resume(session, RunCreate(project="reads", name=f"long-{steps}"), OPEN)
    have = run.step_count or 0
    if have >= steps:
        print(f"run {run.id} holds {have:,} steps already")
        return run.id
    templates = _templates(997, np.random.default_rng(0))
    started = time.perf_counter()
    for first in range(have, steps, BATCH):
        records = _records(first, min(BATCH, steps - first), templates)
        with db.transaction() as session:
            store_batch(session, run.id, records, OPEN)
        if (first // BATCH) % 20 == 19:
            done = first + BATCH - have
            print(f"  {first + BATCH:,} steps stored ({done / (time.perf_counter() - started):,.0f} steps/s)",
                  flush=True)
    print(f"built run {run.id}: {steps - have:,} steps in {time.perf_counter() - started:,.0f} s")
    return run.id


def timed(fn, repeat: int) -> tuple[float, float, int]:
    """(cold ms, warm median ms, answer bytes)."""
    times, size = [], 0
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        size = len(fn())
        times.append(1000 * (time.perf_counter() - t0))
    return times[0], statistics.median(times[1:]), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--db", help="a PostgreSQL database to build in (and reuse); default: a scratch one")
    parser.add_argument("--keep", action="store_true", help="with --db: nothing is dropped")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from fadewatch.server.auth import OPEN
    from fadewatch.server.db import make_engine
    from fadewatch.server.migrate import upgrade
    from fadewatch.server.store import histogram_reads, reads

    with (contextlib.nullcontext(args.db) if args.db else scratch_postgres()) as url:
        upgrade(make_engine(url))
        from fadewatch.server.app import prepare_database
        from fadewatch.server.settings import ServerSettings

        db = prepare_database(ServerSettings(dir=Path(tempfile.gettempdir()), database_url=url))
        run_id = build(db, args.steps)
        keys = [f"metric/{i:02d}" for i in range(SCALARS)]

        def series() -> bytes:
            with db.transaction() as session:
                return reads.series(session, run_id, keys, OPEN, 500).model_dump_json().encode()

        def matrix() -> bytes:
            with db.transaction() as session:
                return histogram_reads.histogram_matrix(session, run_id, [HISTOGRAMS[0]], OPEN, 200).model_dump_json().encode()

        print(f"\none run of {args.steps:,} steps ({SCALARS} scalars, {len(HISTOGRAMS)} histograms of {BINS} bins)")
        for label, fn in ((f"series, {SCALARS} keys, max_points 500", series),
                          ("histogram matrix, 200 columns", matrix)):
            cold, warm, size = timed(fn, args.repeat)
            print(f"{label:<36} cold {cold:7.1f} ms   warm {warm:7.1f} ms   answer {size / 1024:,.0f} KB")
        db.engine.dispose()


if __name__ == "__main__":
    main()
