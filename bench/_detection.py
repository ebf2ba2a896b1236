"""Detection quality of alert rules on demo runs labelled collapsing or healthy by their outcome.

Streams come from the demo trainer (`fadewatch.demo.Trainer`, its default configuration)
reduced by the hook's own statistics (`fadewatch.stats.compute`) from the arguments
`fadewatch demo` passes to `run.log`, the output-head geometry included. fadewatch's default
rules replay each stream through `advance`, the very function the server's engine runs per
ingested step; rlwatch's default detectors (`DetectorSuite` with its default config) see the
same steps, fed the scalars they take.

Collapse step of a run: the first step where entropy/mean falls below 0.3 x its early
baseline (mean of the first 10 steps), the collapse level of METRICS.md. A run is labelled
collapsing when it has a collapse step, healthy when it has none: by what happened, not by
its estimator (the same estimator collapses on one seed and not on another). Lead time of
a rule on a collapsing run: collapse step - the step it first fired (positive = ahead of
the collapse). A false alarm: a rule firing at all on a healthy run.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

__all__ = ["ESTIMATORS", "make_streams", "collapse_step", "fadewatch_firsts", "rlwatch_firsts", "table",
           "describe_runs", "follow_up"]

ESTIMATORS = ("psr", "grpo", "nsr", "fade")  # the estimators `fadewatch demo` trains
COLLAPSE_FRACTION, BASELINE_STEPS = 0.3, 10
SIGN_DIRECTIONS = ("success-heavy", "failure-heavy")


def _stream(estimator: str, steps: int, seed: int) -> list[dict]:
    """One demo run, reduced to what the hook would send for it (as `fadewatch demo` logs it)."""
    import torch

    from fadewatch.demo import Trainer
    from fadewatch.demo.session import HEAD_EVERY
    from fadewatch.stats import HeadWatcher, compute

    torch.set_num_threads(1)
    trainer = Trainer(estimator, seed=seed)
    head = HeadWatcher(trainer.policy.head, every=HEAD_EVERY)
    rows: list[dict] = []
    for _ in range(steps):
        s = trainer.step()
        extra = {k: v for k, v in s.scalars.items() if k.startswith("fade/")}
        extra.update(loss=s.loss, kl=s.scalars["approx_kl"], clip_fraction=s.scalars["clip_fraction"], lr=trainer.config.lr)
        extra.update(head.maybe_measure(s.step) or {})  # tensors and a Ratio: the pipeline reads them
        st = compute(advantages=s.advantages, rewards=s.rewards, group_ids=s.group_ids, entropy=s.entropy,
                     mask=s.mask, logprobs=s.logprobs, completions=s.tokens, scalars=extra)
        rows.append({"step": s.step, "scalars": {k: v for k, v in st.scalars.items() if v is not None},
                     "nonfinite": st.nonfinite or None, "rewards": s.rewards.tolist()})
    return rows


def make_streams(steps: int, seeds: int, cache: Path | None = None, log=print) -> list[dict]:
    """[{estimator, seed, label, rows}], trained now or read back from `cache`."""
    if cache is not None and cache.exists():
        runs = json.loads(cache.read_text())
        if runs and len(runs[0]["rows"]) == steps and len(runs) == seeds * len(ESTIMATORS):
            return runs
    runs = []
    for estimator in ESTIMATORS:
        for seed in range(seeds):
            log(f"  training {estimator} seed {seed} ({steps} steps)")
            rows = _stream(estimator, steps, seed)
            label = "healthy" if collapse_step(rows) is None else "collapsing"
            runs.append({"estimator": estimator, "seed": seed, "label": label, "rows": rows})
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
    from fadewatch.server.alerts.evaluation.machine import Track, advance
    from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES, compile_rule

    firsts = {}
    for spec in rules or DEFAULT_RULES:
        rule = compile_rule(spec, "bench")
        track = Track.for_rule(rule, "bench")
        # The sign rule names the collapse it points to by its direction: only success-heavy
        # mass predicts entropy collapse; failure-heavy mass points to the head's geometry.
        names = ([f"{rule.name}, {d}" for d in SIGN_DIRECTIONS] if rule.name == "sign_imbalance"
                 else [rule.name])
        firsts.update(dict.fromkeys(names))
        for r in rows:
            if advance(rule, track, r["step"], r["scalars"], r["nonfinite"], 0.0) == "firing":
                name = f"{rule.name}, {track.values['direction']}" if len(names) > 1 else rule.name
                if firsts[name] is None:
                    firsts[name] = r["step"]
                if all(firsts[n] is not None for n in names):
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
            r["step"], entropy=s.get("entropy/mean"), kl_divergence=s.get("kl"),
            reward_mean=s.get("reward/mean"), reward_std=s.get("reward/std"),
            rewards=np.asarray(r["rewards"]), advantage_std=s.get("adv/std"), loss=s.get("loss"),
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
            row = out.setdefault(name, {"leads": [], "collapsing": 0, "healthy": 0, "false": []})
            if run["label"] == "healthy":
                row["healthy"] += 1
                if first is not None:
                    row["false"].append(f"{run['estimator']} seed {run['seed']} at {first}")
            else:
                row["collapsing"] += 1
                if first is not None:
                    row["leads"].append(run["collapse"] - first)
    return out


def table(runs: list[dict]) -> list[str]:
    for run in runs:
        run["collapse"] = collapse_step(run["rows"])
    lines = ["| tool | rule | collapsing runs caught | lead time, steps (median; min..max) | "
             "false alarms on healthy runs | where |", "|---|---|---|---|---|---|"]
    for tool, firsts_of in (("fadewatch", lambda r: fadewatch_firsts(r["rows"])),
                            ("rlwatch", lambda r: rlwatch_firsts(r["rows"]))):
        for name, row in _summary(runs, firsts_of).items():
            leads = row["leads"]
            lead = (f"{statistics.median(leads):+g} ({min(leads):+d}..{max(leads):+d})" if leads else "-")
            where = "; ".join(row["false"]) or "-"
            lines.append(f"| {tool} | {name} | {len(leads)}/{row['collapsing']} | {lead} | "
                         f"{len(row['false'])}/{row['healthy']} | {where} |")
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


def follow_up(runs: list[dict], steps: int, log=print) -> list[str]:
    """Healthy-labelled runs that raised a fadewatch warning without crossing the level: trained
    longer, do they cross it later? (Is the warning early, or false?)"""
    lines = []
    for run in runs:
        if run["label"] != "healthy" or collapse_step(run["rows"]) is not None:
            continue
        fired = {k: v for k, v in fadewatch_firsts(run["rows"]).items() if v is not None}
        if not fired:
            continue
        log(f"  training {run['estimator']} seed {run['seed']} on to {steps} steps")
        longer = collapse_step(_stream(run["estimator"], steps, run["seed"]))
        where = f"crosses the collapse level at step {longer}" if longer is not None else "never crosses the level"
        lines.append(f"- {run['estimator']} seed {run['seed']}: {', '.join(f'{k} at {v}' for k, v in fired.items())}; "
                     f"trained on to {steps} steps, it {where}")
    return lines
