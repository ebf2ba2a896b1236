"""The detection corpus: labelled runs from the demo trainer, a real TRL GRPOTrainer and
synthetic streams, generated once and cached under bench/results/corpus/ (one file a run).

Every run is `window` steps watched by the alert rules and `follow_up` steps after them
that only the labels read: a run is labelled by what happened over the whole horizon.

    collapse     the 10-step mean of entropy/mean falls below 0.3 x its first 10 steps
    geometry     the mean of the last 3 measurements of geometry/rank1_frac exceeds 0.95
    nonfinite    a step carries a NaN or Inf
    heavy_tails  (synthetic truth) reward outliers begin

A run with none of these over the horizon is healthy. A problem that begins in the
follow-up is "late": alerts on such a run are early, not false, and its lead is not scored.
Each configuration runs with two seeds; the even one is in the tune half, the odd one in
the report half.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

__all__ = ["RUNS", "load_corpus", "label", "COLLAPSE_FRACTION"]

COLLAPSE_FRACTION, BASELINE_STEPS, SMOOTH = 0.3, 10, 10
FOLLOW_UP = 150

# (source, name, steps, parameters); every one with seeds 0 (tune) and 1 (report)
_DEMO = [("grpo", 2.0, 8, 16), ("psr", 2.0, 8, 16), ("nsr", 2.0, 8, 16), ("fade", 2.0, 8, 16),
         ("rloo", 2.0, 8, 16), ("dr_grpo", 2.0, 8, 16), ("w_reinforce", 2.0, 8, 16), ("maxrl", 2.0, 8, 16),
         ("f_grpo", 2.0, 8, 16), ("grpo", 1.0, 16, 8), ("psr", 0.7, 4, 32), ("fade", 4.0, 8, 16),
         ("rloo", 1.0, 64, 4), ("grpo", 4.0, 4, 16)]
_TRL = [(5e-3, "group", 0.0), (3e-3, "group", 0.0), (1e-3, "group", 0.0), (3e-3, "batch", 0.04),
        (3e-3, "none", 0.0)]
DEMO_STEPS, TRL_STEPS, SYNTHETIC_STEPS = 600, 400, 600


def _specs() -> list[dict]:
    from _corpus_synthetic import SCENARIOS

    out = []
    for seed in (0, 1):
        for est, lr, g, b in _DEMO:
            out.append({"name": f"demo-{est}-lr{lr:g}-G{g}-B{b}-s{seed}", "source": "demo", "seed": seed,
                        "steps": DEMO_STEPS, "params": {"estimator": est, "lr": lr, "group_size": g, "prompts": b}})
        for lr, scale, beta in _TRL:
            out.append({"name": f"trl-lr{lr:g}-{scale}-beta{beta:g}-s{seed}", "source": "trl", "seed": seed,
                        "steps": TRL_STEPS, "params": {"lr": lr, "scale_rewards": scale, "beta": beta}})
        for kind in SCENARIOS:
            out.append({"name": f"synthetic-{kind}-s{seed}", "source": "synthetic", "seed": seed,
                        "steps": SYNTHETIC_STEPS, "params": {"kind": kind}})
    return out


RUNS = _specs()


def _generate(spec: dict) -> tuple[list[dict], dict]:
    if spec["source"] == "demo":
        from _corpus_demo import demo_stream
        return demo_stream(spec["steps"], spec["seed"], **spec["params"]), {}
    if spec["source"] == "trl":
        from _corpus_trl import trl_stream
        return trl_stream(spec["steps"], spec["seed"], **spec["params"]), {}
    from _corpus_synthetic import synthetic_stream
    return synthetic_stream(spec["steps"], spec["seed"], **spec["params"])


def load_corpus(cache: Path, log=print, only: str | None = None, generate: bool = True) -> list[dict]:
    """Every run of RUNS, from the cache or generated now (and cached), labelled; without
    ``generate``, the cached ones only."""
    cache.mkdir(parents=True, exist_ok=True)
    runs = []
    for spec in RUNS:
        if only and only not in spec["name"]:
            continue
        path = cache / f"{spec['name']}.json"
        if path.exists():
            data = json.loads(path.read_text())
        elif not generate:
            continue
        else:
            started = time.perf_counter()
            log(f"  generating {spec['name']} ({spec['steps']} steps)")
            rows, truth = _generate(spec)
            data = {"rows": rows, "truth": truth, "seconds": round(time.perf_counter() - started, 1)}
            path.write_text(json.dumps(data))
        run = {**spec, **data, "half": "tune" if spec["seed"] % 2 == 0 else "report"}
        run.update(label(run))
        runs.append(run)
    return runs


def _entropy_collapse(rows: list[dict]) -> int | None:
    values = [(r["step"], r["scalars"].get("entropy/mean")) for r in rows]
    values = [(s, v) for s, v in values if v is not None]
    if len(values) < BASELINE_STEPS + SMOOTH:
        return None
    level = COLLAPSE_FRACTION * statistics.fmean(v for _, v in values[:BASELINE_STEPS])
    for i in range(SMOOTH - 1, len(values)):
        if statistics.fmean(v for _, v in values[i - SMOOTH + 1:i + 1]) < level:
            return values[i][0]
    return None


def _geometry_collapse(rows: list[dict]) -> int | None:
    seen = [(r["step"], r["scalars"]["geometry/rank1_frac"]) for r in rows if "geometry/rank1_frac" in r["scalars"]]
    for i in range(2, len(seen)):
        if statistics.fmean(v for _, v in seen[i - 2:i + 1]) > 0.95:
            return seen[i][0]
    return None


def label(run: dict) -> dict:
    """problems {kind: step}, window (steps the rules watch), label healthy / problem / late."""
    rows = run["rows"]
    window = rows[-1]["step"] + 1 - FOLLOW_UP
    problems = {"collapse": _entropy_collapse(rows), "geometry": _geometry_collapse(rows),
                "nonfinite": next((r["step"] for r in rows if r["nonfinite"]), None), **run.get("truth", {})}
    problems = {k: v for k, v in problems.items() if v is not None}
    first = min(problems.values(), default=None)
    kind = "healthy" if first is None else "problem" if first < window else "late"
    return {"problems": problems, "window": window, "label": kind}
