"""The contract between the hook, the server and the dashboard, checked on the real code of each.

- Every record the hook writes (real statistics, real encoding, real spool) on varied
  inputs passes the server's own ingest validation: its StepBatch schema and its limits.
- Every name the hook emits is in the metric registry, and every registered metric of
  the statistics is emitted by some input.
- Every metric a dashboard chart or a default alert rule reads is one the hook emits, and
  the registry's ``chart`` of each matches the chart that plots it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fadewatch
from fadewatch.api_client import batch_body
from fadewatch.protocol import limits, metrics
from fadewatch.protocol.rollouts import MAX_GROUPS, MAX_STEP_BYTES
from fadewatch.rollouts import RolloutConfig

USER_SCALARS = {"loss", "my/metric", "flag", "tensor/scalar", "not_finite"}
STEPS = 48


def _ids(rng, n: int, g: int, how: int):
    """Group ids of n rollouts: a group size, shuffled ints, strings, or uneven groups."""
    if how == 0:
        return g
    if how == 1:
        return rng.permutation(np.repeat(np.arange(n // g) * 7 + 3, g)).tolist()
    if how == 2:
        return [f"prompt-{i // g}" for i in range(n)]
    return np.sort(rng.integers(0, 3, n))


def _rows(rng, lengths, scale=1.0, dtype=np.float32, nan=False):
    rows = [(rng.standard_normal(k) * scale).astype(dtype) for k in lengths]
    if nan and rows and len(rows[0]):
        rows[0][0] = np.nan
    return rows


def step_inputs(rng, i: int) -> dict:
    """One step's arguments to run.log; which inputs and in what shape vary with i and rng."""
    g = int(rng.choice([1, 2, 4, 5, 8]))
    n = g * int(rng.integers(1, 6))
    t = int(rng.integers(1, 12))
    kind = i % 4  # 0: per-rollout, dense tokens; 1: per-token; 2: ragged; 3: scalars only
    out: dict = {"loss": float(rng.random()), "my/metric": np.float32(rng.random()), "flag": bool(i % 2),
                 "tensor/scalar": torch.tensor(float(i)), "not_finite": math.nan if i % 5 == 0 else 1.0}
    if kind == 3:
        return out
    p = rng.random()
    rewards = (rng.random(n) < p).astype(np.float64) if i % 3 else rng.standard_normal(n)
    if i % 11 == 0:
        rewards = np.ones(n)  # every group solved: no signal at all
    out["rewards"] = rewards if i % 2 else torch.from_numpy(rewards)
    out["group_ids"] = _ids(rng, n, g, (i // 4) % 4)
    adv = rewards - rewards.mean()
    if i % 13 == 0:
        adv[:] = 0.0
    if i % 17 == 0:
        adv[0] = np.nan
    words = ["the", "answer", "is", "4", "2", "maybe", "so"]
    if kind == 2:
        lengths = rng.integers(0, t + 1, n)
        out["advantages"] = adv.tolist() if i % 3 else [np.full(k, a) for k, a in zip(lengths, adv)]
        out["entropy"] = [np.abs(r) for r in _rows(rng, lengths, 2.0, nan=i % 7 == 0)]
        out["logprobs"] = [-np.abs(r) for r in _rows(rng, lengths)]
        out["completions"] = [rng.integers(0, 50, k).tolist() for k in lengths]
        return out
    mask = (rng.random((n, t)) < 0.8).astype(np.int64)
    out["mask"] = mask if i % 2 else torch.from_numpy(mask).bool()
    out["advantages"] = (np.repeat(adv[:, None], t, 1) + rng.standard_normal((n, t)) * 0.1
                         if kind == 1 else adv.astype(np.float32))
    out["entropy"] = np.abs(rng.standard_normal((n, t))).astype(np.float32) * 3
    out["logprobs"] = torch.from_numpy(-np.abs(rng.standard_normal((n, t))))
    out["completions"] = (rng.integers(0, 50, (n, t)) if i % 3 == 0 else
                          [" ".join(rng.choice(words, int(rng.integers(0, 6)))) for _ in range(n)])
    return out


@pytest.fixture(scope="module")
def hook_records(tmp_path_factory) -> list[bytes]:
    """The encoded records of one offline run of STEPS varied steps, with head geometry."""
    tmp = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(2024)
    head = torch.nn.Linear(8, 16)
    run = fadewatch.init(project="contract", name="varied", mode="offline", dir=tmp,
                         rollouts=RolloutConfig(step_bytes=MAX_STEP_BYTES, groups=64))
    try:
        run.watch_head(head, every=2)
        for i in range(STEPS):
            run.log(i, **step_inputs(rng, i))
            with torch.no_grad():
                head.weight.add_(torch.randn(16, 8) * 0.01 + (0.05 if i > 20 else 0.0))
    finally:
        assert run.finish(30)
    health = run.health()
    assert health["spooled"] == STEPS and health["dropped"] == 0 and health["stats_errors"] == 0, health
    lines = [line for f in sorted(Path(run.spool_dir).glob("*.jsonl")) for line in f.read_bytes().splitlines()]
    assert len(lines) == STEPS
    return lines


def test_every_record_the_hook_writes_passes_the_servers_ingest_validation(hook_records):
    from fadewatch.server.limits import check_batch, parse_batch
    from fadewatch.server.settings import ServerSettings

    batch = parse_batch(batch_body(hook_records), "application/json")
    check_batch(batch, ServerSettings())
    assert [r.step for r in batch.records] == list(range(STEPS))
    for line in hook_records:  # and one at a time, as a split batch would go
        parse_batch(batch_body([line]), "application/json")
    sent = [r.model_dump() for r in batch.records]
    assert any(r["rollouts"] for r in sent) and any(r["nonfinite"] for r in sent)
    assert max(len(r["rollouts"] or ()) for r in sent) <= MAX_GROUPS


def _emitted(records) -> tuple[set[str], set[str]]:
    scalars, histograms = set(), set()
    for r in records:
        scalars |= set(r.scalars)
        histograms |= set(r.histograms)
    return scalars, histograms


def test_every_name_the_hook_emits_is_registered_and_every_registered_one_is_emitted(hook_records):
    from fadewatch.server.limits import parse_batch

    scalars, histograms = _emitted(parse_batch(batch_body(hook_records), "application/json").records)
    ours = scalars - USER_SCALARS
    assert USER_SCALARS <= scalars
    unknown = sorted(n for n in ours | histograms if metrics.find(n) is None)
    assert unknown == [], f"emitted but not in fadewatch.protocol.metrics: {unknown}"
    for name in ours:
        assert metrics.metric(name).kind == "scalar", name
    for name in histograms:
        assert metrics.metric(name).kind == "histogram", name
    assert {n for n in ours if metrics.pass_k(n)} >= {"pass@1", "pass@2", "pass@4", "pass@8", "pass@5"}
    registered = {m.name for m in metrics.metrics() if m.source == "stats" and not m.family}
    assert registered - ours - histograms == set(), "registered but never emitted"


def test_dashboard_charts_read_registered_metrics_in_their_registered_chart():
    from fadewatch.dashboard.figures.charts import CHART_BY_ID, CHARTS, HISTOGRAMS, charts_for, other_keys

    for chart in CHARTS:
        plotted = [t.key for t in chart.traces]
        for key in plotted:
            assert metrics.metric(key).chart == chart.id, (chart.id, key)
        registered = metrics.in_chart(chart.id)
        if chart.dynamic == "pass":
            plotted.append(metrics.PASS_AT_K)
        assert sorted(plotted) == sorted(registered), chart.id
    for entry in metrics.metrics():
        assert entry.chart is None or entry.chart in CHART_BY_ID or entry.chart == metrics.OTHER or (
            entry.kind == "histogram" and entry.chart.endswith("-heatmap")), entry
    for name in HISTOGRAMS.values():
        assert metrics.metric(name).kind == "histogram" and metrics.metric(name).chart.endswith("-heatmap")
    shown = {m.name for m in metrics.metrics("histogram") if m.chart}
    assert shown == set(HISTOGRAMS.values())
    # What the registry calls OTHER lands under "Other scalars"; what it charts nowhere, nowhere.
    fixed = [m.name for m in metrics.metrics("scalar") if not m.family]
    keys = [*fixed, "pass@1", "pass@3", "loss"]
    assert set(other_keys(keys)) == {m for m in fixed if metrics.metric(m).chart == metrics.OTHER} | {"loss"}
    pass_traces = dict((c.id, t) for c, t in charts_for(keys))["pass"]
    assert [t.key for t in pass_traces][:2] == ["pass@1", "pass@3"]


class Reads(dict):
    """Step scalars that answer every name and remember which were asked for."""

    def __init__(self, value: float):
        super().__init__()
        self.value, self.asked = value, set()

    def get(self, key, default=None):
        self.asked.add(key)
        return self.value

    def __getitem__(self, key):
        return self.get(key)

    def __contains__(self, key):
        self.asked.add(key)
        return True


def test_the_default_alert_rules_read_only_metrics_the_hook_emits():
    from fadewatch.server.alerts.evaluation.compiled import compile_rule
    from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES

    read: dict[str, set[str]] = {}
    for spec in DEFAULT_RULES:
        rule = compile_rule(spec, "default")
        mem: dict = {}
        asked: set[str] = set()
        for step in range(120):  # past every baseline and window, rising then falling
            scalars = Reads(2.0 - step / 100 if step > 60 else 1.0 + step / 100)
            rule.step(rule.params, mem, step, scalars, [])
            asked |= scalars.asked
        read[spec.name] = asked
    assert read["nonfinite"] == set()  # it reads the step's nonfinite list, not scalars
    assert all(read[name] for name in read if name != "nonfinite")
    for rule, names in read.items():
        for name in names:
            entry = metrics.metric(name)
            assert entry.kind == "scalar" and entry.source == "stats", (rule, name)


def test_the_hooks_batches_and_rollouts_fit_the_servers_default_limits():
    import inspect

    from fadewatch.runs import Run
    from fadewatch.sender import Sender
    from fadewatch.stats.config import DEFAULT_HISTOGRAMS

    sender = inspect.signature(Sender).parameters
    assert inspect.signature(Run).parameters["batch_size"].default <= limits.MAX_BATCH_RECORDS
    assert sender["batch_size"].default <= limits.MAX_BATCH_RECORDS
    assert sender["max_batch_bytes"].default <= limits.MAX_BODY_BYTES
    assert RolloutConfig().step_bytes <= MAX_STEP_BYTES
    for name, spec in DEFAULT_HISTOGRAMS.items():
        assert metrics.metric(name).kind == "histogram" and spec.bins <= limits.MAX_HISTOGRAM_BINS
