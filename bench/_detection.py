"""Detection quality of alert rules on demo runs labelled collapsing or healthy.

Streams come from the demo trainer (`fadewatch.demo.train`) with the hook's own statistics
(`fadewatch.stats.compute`, the output-head geometry every 10 steps). fadewatch's default
rules replay each stream through `advance`, the very function the server's engine runs per
ingested step; rlwatch's default detectors (`DetectorSuite` with its default config) see the
same steps, fed the scalars they take.

Collapse step of a run: the first step where entropy/mean falls below 0.3 x its early
baseline (mean of the first 10 steps), the collapse level of METRICS.md. Lead time of a rule
on a collapsing run: collapse step - the step it first fired (positive = ahead of the
collapse). A false alarm: a rule firing at all on a run labelled healthy.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

__all__ = ["LABELS", "make_streams", "collapse_step", "fadewatch_firsts", "rlwatch_firsts", "table"]

LABELS = {"psr": "collapsing", "fade": "healthy", "grpo": "healthy"}
COLLAPSE_FRACTION, BASELINE_STEPS = 0.3, 10


def _stream(estimator: str, steps: int, seed: int) -> list[dict]:
    import torch

    from fadewatch.demo import train
    from fadewatch.stats import HeadWatcher, compute

    rows: list[dict] = []
    head: list[HeadWatcher] = []

    def on_step(s) -> None:
        if not head:
            head.append(HeadWatcher(s.policy.head, every=10))
        extra = dict(s.scalars)
        measured = head[0].maybe_measure(s.step)
        if measured:
            extra.update(measured)  # tensors and a Ratio: the pipeline reads them
        st = compute(advantages=s.advantages, rewards=s.rewards, group_ids=s.group_ids, entropy=s.entropy,
                     mask=s.mask, logprobs=s.logprobs, completions=s.completions, scalars=extra)
        rows.append({"step": s.step, "scalars": {k: v for k, v in st.scalars.items() if v is not None},
                     "nonfinite": st.nonfinite or None, "rewards": s.rewards.tolist(), "loss": s.loss})

    torch.set_num_threads(1)
    train(estimator, steps=steps, seed=seed, on_step=on_step)
    return rows


def make_streams(steps: int, seeds: int, cache: Path | None = None, log=print) -> list[dict]:
    """[{estimator, seed, label, rows}], trained now or read back from `cache`."""
    if cache is not None and cache.exists():
        runs = json.loads(cache.read_text())
        if runs and len(runs[0]["rows"]) == steps and len(runs) == seeds * len(LABELS):
            return runs
    runs = []
    for estimator, label in LABELS.items():
        for seed in range(seeds):
            log(f"  training {estimator} seed {seed} ({steps} steps)")
            runs.append({"estimator": estimator, "seed": seed, "label": label,
                         "rows": _stream(estimator, steps, seed)})
    if cache is not None:
        cache.write_text(json.dumps(runs))
    return runs


def collapse_step(rows: list[dict]) -> int | None:
    values = [(r["step"], r["scalars"].get("entropy/mean")) for r in rows]
    values = [(s, v) for s, v in values if v is not None]
    if len(values) < BASELINE_STEPS:
        return None
    level = COLLAPSE_FRACTION * statistics.fmean(v for _, v in values[:BASELINE_STEPS])
    return next((s for s, v in values if v < level), None)


def fadewatch_firsts(rows: list[dict], rules=None) -> dict[str, int | None]:
    """First firing step of each default rule (or of `rules`)."""
    from fadewatch.server.alerts.machine import Track, advance
    from fadewatch.server.alerts.rules import DEFAULT_RULES, compile_rule

    firsts = {}
    for spec in rules or DEFAULT_RULES:
        rule = compile_rule(spec, "bench")
        track = Track.for_rule(rule, "bench")
        firsts[rule.name] = None
        for r in rows:
            if advance(rule, track, r["step"], r["scalars"], r["nonfinite"], 0.0) == "firing":
                firsts[rule.name] = r["step"]
                break
    return firsts


def rlwatch_firsts(rows: list[dict]) -> dict[str, int | None] | None:
    """First alert step of each rlwatch default detector, or None without rlwatch."""
    try:
        import numpy as np
        from rlwatch.config import RLWatchConfig
        from rlwatch.detectors import DetectorSuite
    except ImportError:
        return None
    suite = DetectorSuite(RLWatchConfig())
    names = ("entropy_collapse", "kl_explosion", "reward_hacking", "advantage_variance", "loss_nan",
             "gradient_norm_spike", "reward_mean_drift")
    firsts: dict[str, int | None] = dict.fromkeys(names)
    for r in rows:
        s = r["scalars"]
        alerts = suite.check_step(
            r["step"], entropy=s.get("entropy/mean"), kl_divergence=s.get("approx_kl"),
            reward_mean=s.get("reward/mean"), reward_std=s.get("reward/std"),
            rewards=np.asarray(r["rewards"]), advantage_std=s.get("adv/std"), loss=r["loss"],
        )
        for alert in alerts:
            if firsts.get(alert.detector) is None:
                firsts[alert.detector] = r["step"]
    return firsts


def _summary(runs: list[dict], firsts_of) -> dict[str, dict]:
    """Per rule: detections and lead times on collapsing runs, false alarms on healthy ones."""
    out: dict[str, dict] = {}
    for run in runs:
        firsts = firsts_of(run)
        if firsts is None:
            return {}
        for name, first in firsts.items():
            row = out.setdefault(name, {"leads": [], "collapsing": 0, "missed": 0, "healthy": 0, "false": 0})
            if run["label"] == "healthy":
                row["healthy"] += 1
                row["false"] += first is not None
            elif run["collapse"] is not None:
                row["collapsing"] += 1
                if first is None:
                    row["missed"] += 1
                else:
                    row["leads"].append(run["collapse"] - first)
    return out


def table(runs: list[dict]) -> list[str]:
    for run in runs:
        run["collapse"] = collapse_step(run["rows"])
    lines = ["| tool | rule | collapsing runs caught | lead time, steps (median; min..max) | "
             "false alarms on healthy runs |", "|---|---|---|---|---|"]
    for tool, firsts_of in (("fadewatch", lambda r: fadewatch_firsts(r["rows"])),
                            ("rlwatch", lambda r: rlwatch_firsts(r["rows"]))):
        for name, row in _summary(runs, firsts_of).items():
            leads = row["leads"]
            lead = (f"{statistics.median(leads):+g} ({min(leads):+d}..{max(leads):+d})" if leads else "-")
            lines.append(f"| {tool} | {name} | {len(leads)}/{row['collapsing']} | {lead} | "
                         f"{row['false']}/{row['healthy']} |")
    return lines


def describe_runs(runs: list[dict]) -> list[str]:
    lines = ["| run | label | entropy first 10 steps -> last 10 | collapse step (< 0.3 x baseline) |",
             "|---|---|---|---|"]
    for run in runs:
        ent = [r["scalars"].get("entropy/mean", math.nan) for r in run["rows"]]
        lines.append(f"| {run['estimator']} seed {run['seed']} | {run['label']} | "
                     f"{statistics.fmean(ent[:10]):.2f} -> {statistics.fmean(ent[-10:]):.2f} | "
                     f"{collapse_step(run['rows']) if collapse_step(run['rows']) is not None else 'none'} |")
    return lines
