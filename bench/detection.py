"""Detection benchmark: alert rules on labelled runs they were not tuned on, side by side with rlwatch.

    .venv-bench/bin/python bench/detection.py                 # generate (or reuse) the corpus, both halves
    .venv-bench/bin/python bench/detection.py --half report   # the half the rules were not tuned on
    .venv-bench/bin/python bench/detection.py --runs          # and the table of runs and labels
    .venv-bench/bin/python bench/detection.py --forecasts     # and the forecast models side by side
    .venv-bench/bin/python bench/detection.py --rules r.yaml  # other settings (a server rule file) on the same runs

The corpus (bench/_corpus.py) is generated once and cached under bench/results/corpus/, one
file a run; delete a file to generate that run again. fadewatch's default rules see each
stream through the server's own ingest service (bench/_replay.py), rlwatch 0.5.1's default
detectors see the same steps. Per rule, on one half of the corpus:

    recall          runs with a problem the rule is for, in the window, on which it fired
    lead            problem step - first firing step (positive: ahead), median and min
    false alarms    healthy runs on which it fired at all
    re-fires/run    episodes after the first of the same alert in a run
    notifications   messages sent per run, and the most sent for one episode

"any rule" takes, per run, the first firing of any of the tool's rules.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import FOLLOW_UP, load_corpus  # noqa: E402
from _forecasts import compare  # noqa: E402
from _replay import RLWATCH, FadewatchReplay, rlwatch_replay  # noqa: E402

from fadewatch.server.alerts.evaluation.rulefile import load_rules_file  # noqa: E402

CACHE = Path(__file__).resolve().parent / "results" / "corpus"
ALL = frozenset({"collapse", "geometry", "nonfinite", "heavy_tails"})
COVERS = {
    "fadewatch": {"nonfinite": {"nonfinite"}, "entropy_collapse": {"collapse"}, "entropy_early_warning": {"collapse"},
                  "sign_imbalance": {"collapse", "geometry"}, "heavy_tails": {"heavy_tails"}, "no_signal": set(),
                  "diversity_collapse": {"collapse"}, "geometry_collapse": {"geometry"}},
    "rlwatch": {"entropy_collapse": {"collapse"}, "loss_nan": {"nonfinite"}, "advantage_variance": {"heavy_tails"},
                **{name: ALL for name in RLWATCH if name not in ("entropy_collapse", "loss_nan", "advantage_variance")}},
}


def replay_all(runs: list[dict], file_rules=()) -> None:
    """run["fadewatch"], run["rlwatch"]: per rule, episodes and notifications in the run's window;
    ``file_rules`` override the defaults by name, as the server's rule file does."""
    replay = FadewatchReplay(file_rules)
    try:
        for run in runs:
            run["fadewatch"] = replay.run(run["rows"], run["window"])
            run["rlwatch"] = rlwatch_replay(run["rows"], run["window"])
    finally:
        replay.close()


def _problem(run: dict, kinds) -> int | None:
    steps = [s for k, s in run["problems"].items() if k in kinds]
    return min(steps) if steps else None


def score(runs: list[dict], tool: str, rule: str | None) -> dict:
    """One row of the table: rule None is "any rule" of the tool."""
    rules = COVERS[tool] if rule is None else {rule: COVERS[tool].get(rule, ALL)}
    covers = set().union(*rules.values()) if rule is not None else ALL
    row = {"caught": 0, "cases": 0, "leads": [], "false": [], "healthy": 0, "refires": 0, "notes": 0,
           "per_episode": 0, "runs": len(runs)}
    for run in runs:
        found = run.get(tool)
        if found is None:
            return {}
        mine = {name: found.get(name, {"episodes": [], "notifications": 0}) for name in rules}
        firsts = [e[0][0] for e in (m["episodes"] for m in mine.values()) if e]
        first = min(firsts) if firsts else None
        row["refires"] += sum(max(0, len(m["episodes"]) - 1) for m in mine.values())
        row["notes"] += sum(m["notifications"] for m in mine.values())
        row["per_episode"] = max([row["per_episode"]] + [m["notifications"] / len(m["episodes"])
                                                        for m in mine.values() if m["episodes"]])
        if run["label"] == "healthy":
            row["healthy"] += 1
            if first is not None:
                row["false"].append(f"{run['name']} at {first}")
            continue
        step = _problem(run, covers)
        if run["label"] == "problem" and step is not None and step < run["window"]:
            row["cases"] += 1
            if first is not None:
                row["caught"] += 1
                row["leads"].append(step - first)
    return row


def table(runs: list[dict]) -> list[str]:
    lines = ["| tool | rule | recall | lead, steps (median; min) | false alarms on healthy runs | "
             "re-fires per run | notifications per run (most per episode) |", "|---|---|---|---|---|---|---|"]
    for tool in ("fadewatch", "rlwatch"):
        for rule in [*COVERS[tool], None]:
            row = score(runs, tool, rule)
            if not row:
                continue
            leads = row["leads"]
            lead = f"{statistics.median(leads):+g}; {min(leads):+d}" if leads else "-"
            recall = f"{row['caught']}/{row['cases']}" if row["cases"] else "-"
            false = f"{len(row['false'])}/{row['healthy']}" + (f" ({'; '.join(row['false'])})" if row["false"] else "")
            n = max(row["runs"], 1)
            lines.append(f"| {tool} | {rule or '**any rule**'} | {recall} | {lead} | {false} | "
                         f"{row['refires'] / n:.2f} | {row['notes'] / n:.2f} ({row['per_episode']:g}) |")
    return lines


def describe(runs: list[dict]) -> list[str]:
    lines = ["| run | half | label | problems (step) | entropy first 10 -> last 10 of the window |", "|---|---|---|---|---|"]
    for run in runs:
        ent = [r["scalars"].get("entropy/mean") for r in run["rows"] if r["step"] < run["window"]]
        ent = [e for e in ent if e is not None]
        probs = ", ".join(f"{k} {v}" for k, v in sorted(run["problems"].items(), key=lambda kv: kv[1])) or "-"
        trend = f"{statistics.fmean(ent[:10]):.2f} -> {statistics.fmean(ent[-10:]):.2f}" if len(ent) >= 10 else "-"
        lines.append(f"| {run['name']} | {run['half']} | {run['label']} | {probs} | {trend} |")
    return lines


def early_on_late(runs: list[dict]) -> list[str]:
    """Alerts on runs whose problem begins in the follow-up: early, not false."""
    out = []
    for run in runs:
        if run["label"] != "late":
            continue
        fired = {rule: m["episodes"][0][0] for rule, m in run["fadewatch"].items() if m["episodes"]}
        out.append(f"- {run['name']}: {', '.join(f'{k} at {v}' for k, v in sorted(run['problems'].items()))} "
                   f"(window ends at {run['window']}); fadewatch fired "
                   + (", ".join(f"{r} at {s}" for r, s in sorted(fired.items(), key=lambda kv: kv[1])) or "nothing"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=["tune", "report", "both"], default="both")
    parser.add_argument("--runs", action="store_true", help="also print every run with its label")
    parser.add_argument("--only", default=None, help="only runs whose name contains this")
    parser.add_argument("--cached", action="store_true", help="only the runs already cached; generate none")
    parser.add_argument("--forecasts", action="store_true",
                        help="also compare the served forecast with the mechanism-calibrated one (tune half)")
    parser.add_argument("--rules", type=Path, default=None,
                        help="a rule file (as `fadewatch server --rules`): its rules replace the defaults of that name")
    args = parser.parse_args()
    file_rules = load_rules_file(args.rules) if args.rules else []
    started = time.perf_counter()
    runs = load_corpus(CACHE, log=lambda m: print(m, file=sys.stderr, flush=True), only=args.only,
                       generate=not args.cached)
    generated = sum(r.get("seconds", 0) for r in runs)
    print(f"corpus: {len(runs)} runs ({sum(r['label'] == 'healthy' for r in runs)} healthy, "
          f"{sum(r['label'] == 'problem' for r in runs)} with a problem in the window, "
          f"{sum(r['label'] == 'late' for r in runs)} with one in the {FOLLOW_UP}-step follow-up only); "
          f"generating it took {generated / 60:.1f} min", flush=True)
    replay_all(runs, file_rules)
    if args.runs:
        print("\n" + "\n".join(describe(runs)))
    for half in ("tune", "report") if args.half == "both" else (args.half,):
        mine = [r for r in runs if r["half"] == half]
        print(f"\n### {half} half ({len(mine)} runs)\n")
        print("\n".join(table(mine)))
        late = early_on_late(mine)
        if late:
            print("\nRuns whose problem begins in the follow-up:\n" + "\n".join(late))
    if args.forecasts:
        tune = [r for r in runs if r["half"] == "tune"]
        served = {r["name"]: next((e[0][0] for e in [r["fadewatch"].get("entropy_early_warning", {}).get("episodes")]
                                   if e), None) for r in tune}
        print("\n### forecast models, tune half\n")
        print("\n".join(compare(tune, served)))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
