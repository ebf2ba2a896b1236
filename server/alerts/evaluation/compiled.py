"""Rules ready to evaluate: compiled once per distinct spec, and a project's effective set.

A project's rules are the defaults, overridden by name by the rules of the server's rule
file, overridden in turn by the rules set through the API (rules.py holds the model).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from fadewatch.server.alerts.evaluation.detectors import DETECTORS, ThresholdParams
from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES, FileRule, RuleSpec, spec_hash

__all__ = ["CompiledRule", "compile_rule", "effective_rules"]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    detector: str
    title: str
    params: Any
    step: Any
    describe: Any
    for_steps: int
    keep_firing_steps: int
    warmup_steps: int
    severity: str
    repeat_interval_s: float
    labels: dict
    label_key: str
    hash: str
    source: str
    spec: RuleSpec

    def fingerprint(self, run_id: int) -> str:
        return hashlib.sha256(f"{run_id}\x1f{self.name}\x1f{self.label_key}".encode()).hexdigest()[:24]


_compiled: dict[tuple[str, str], CompiledRule] = {}


def compile_rule(spec: RuleSpec, source: str) -> CompiledRule:
    """The rule ready to evaluate; compiled once per distinct spec."""
    digest = spec_hash(spec)
    hit = _compiled.get((digest, source))
    if hit is not None:
        return hit
    d = DETECTORS[spec.detector]
    if spec.detector == "threshold":
        params = ThresholdParams(metric=spec.metric, op=spec.op, value=spec.value, clear_value=spec.clear_value)
    else:
        params = d.params.model_validate(spec.params)
    rule = CompiledRule(
        name=spec.name, detector=spec.detector, title=d.title, params=params, step=d.step,
        describe=d.describe, for_steps=spec.for_steps, keep_firing_steps=spec.keep_firing_steps,
        warmup_steps=spec.warmup_steps, severity=spec.severity,
        repeat_interval_s=spec.repeat_interval_s, labels=dict(spec.labels),
        label_key=orjson.dumps(spec.labels, option=orjson.OPT_SORT_KEYS).decode(),
        hash=digest, source=source, spec=spec,
    )
    if len(_compiled) > 4096:
        _compiled.clear()
    _compiled[(digest, source)] = rule
    return rule


def effective_rules(
    project: str | None, file_rules: list[FileRule], api_rules: list[RuleSpec]
) -> list[CompiledRule]:
    """Every rule of a project, disabled ones included: defaults < file rules < API rules."""
    by_name: dict[str, tuple[RuleSpec, str]] = {r.name: (r, "default") for r in DEFAULT_RULES}
    for scoped in (False, True):  # rules for all projects first, then the project's own
        for r in file_rules:
            if bool(r.projects) == scoped and (not scoped or project in r.projects):
                by_name[r.name] = (r, "file")
    for r in api_rules:
        by_name[r.name] = (r, "api")
    return [compile_rule(spec, source) for spec, source in by_name.values()]
