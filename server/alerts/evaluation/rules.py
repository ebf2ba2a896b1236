"""Alert rules: the model and the built-in defaults (compiled rules: compiled.py; the rule file: rulefile.py).

A project's rules are the defaults, overridden by name by the rules of the server's rule
file, overridden in turn by the rules set through the API. `enabled: false` switches a
rule off; the defaults watch every new run with no configuration at all.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from fadewatch.protocol.answers import describe_errors
from fadewatch.server.alerts.evaluation.detectors import DETECTORS
from fadewatch.server.schemas import DisplayName, MetricName

__all__ = [
    "RuleSpec",
    "RuleBody",
    "RulePatch",
    "FileRule",
    "DEFAULT_RULES",
    "spec_hash",
    "RESERVED_LABELS",
    "brief",
]

Severity = Literal["warning", "critical"]
DetectorName = Literal[tuple(DETECTORS)]  # type: ignore[valid-type]
RESERVED_LABELS = frozenset({"project", "run", "run_id", "rule", "severity", "detector"})
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


def _rule_name(value: str) -> str:
    if not _RULE_NAME.fullmatch(value):
        raise ValueError("rule names are 1-100 letters, digits, _ . - (starting with a letter or digit)")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 16:
        raise ValueError("at most 16 labels")
    for k, v in value.items():
        if not _LABEL_NAME.fullmatch(k):
            raise ValueError(f"label name {k[:80]!r} must match [A-Za-z_][A-Za-z0-9_]*, up to 64 characters")
        if k in RESERVED_LABELS:
            raise ValueError(f"label {k!r} is set by the server; pick another name")
        if len(v) > 200 or _CONTROL.search(v):
            raise ValueError(f"label {k!r}: values are up to 200 characters without control characters")
    return dict(sorted(value.items()))


RuleName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_rule_name)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
MAX_REPEAT_S = 30 * 86_400


class _RuleFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: DetectorName = Field("threshold", description="a built-in detector, or `threshold` on `metric`")
    metric: MetricName | None = Field(None, description="threshold rules: the scalar to watch")
    op: Literal[">", ">=", "<", "<=", "==", "!="] | None = Field(None, description="threshold rules")
    value: float | None = Field(None, allow_inf_nan=False, description="threshold rules: the bound")
    clear_value: float | None = Field(
        None, allow_inf_nan=False,
        description="threshold rules: the bound the metric must be back past to clear (hysteresis); default: value")
    params: dict[str, Any] = Field(default_factory=dict, description="detector settings; defaults filled in")
    for_steps: int = Field(1, ge=1, le=100_000, description="consecutive tripping steps before firing")
    keep_firing_steps: int = Field(0, ge=0, le=100_000,
                                   description="hold: clear evaluations tolerated before resolving (keep_firing_for)")
    warmup_steps: int = Field(0, ge=0, le=10_000_000, description="first evaluations of a run that never fire")
    severity: Severity = "warning"
    repeat_interval_s: float = Field(0.0, ge=0, le=MAX_REPEAT_S, allow_inf_nan=False,
                                     description="re-notify while firing this often; 0 (default): never, one "
                                                 "message when an episode starts and one when it ends")
    labels: Labels = Field(default_factory=dict)
    enabled: bool = True
    description: str | None = Field(None, max_length=500)


def _split_condition(data: Any) -> Any:
    """`condition: "> 0.5"` is shorthand for op and value."""
    if isinstance(data, dict) and "condition" in data:
        data = dict(data)
        cond = data.pop("condition")
        match = _CONDITION.fullmatch(cond) if isinstance(cond, str) else None
        if match is None:
            raise ValueError('condition is an operator and a number, e.g. "> 0.5" or "<= 0.1"')
        try:
            number = float(match.group(2))
        except ValueError:
            raise ValueError(f"condition: {match.group(2)[:40]!r} is not a number") from None
        data.setdefault("op", match.group(1))
        data.setdefault("value", number)
    return data


class RuleBody(_RuleFields):
    """A rule without its name (the name is in the path)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _split_condition(data)

    @model_validator(mode="after")
    def _check(self) -> RuleBody:
        if self.detector == "threshold":
            missing = [f for f in ("metric", "op", "value") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a threshold rule needs {', '.join(missing)} (e.g. metric: loss, op: '>', value: 10)")
            if self.params:
                raise ValueError("threshold rules take metric, op and value, not params")
            _check_clear_value(self.op, self.value, self.clear_value)
            return self
        given = [f for f in ("metric", "op", "value", "clear_value") if getattr(self, f) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to threshold rules; detector "
                             f"{self.detector!r} takes its settings in params")
        try:
            full = DETECTORS[self.detector].params.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"params of {self.detector}: {brief(exc)}") from None
        self.params = full.model_dump()
        return self


def _check_clear_value(op: str, value: float, clear: float | None) -> None:
    if clear is None:
        return
    if op in ("==", "!="):
        raise ValueError(f"clear_value needs an ordering operator (> >= < <=), not {op!r}")
    if (op in (">", ">=") and clear > value) or (op in ("<", "<=") and clear < value):
        side = "at or below" if op in (">", ">=") else "at or above"
        raise ValueError(f"clear_value {clear:g} must be {side} value {value:g}: the alert clears once the "
                         "metric is back past it")


class RuleSpec(RuleBody):
    """A rule: a detector (or a threshold on one scalar) and when it fires."""

    name: RuleName


class RulePatch(BaseModel):
    """A partial rule: the fields given replace the rule's; `params` merge key by key."""

    model_config = ConfigDict(extra="forbid")

    detector: DetectorName | None = None
    metric: MetricName | None = None
    op: Literal[">", ">=", "<", "<=", "==", "!="] | None = None
    value: float | None = Field(None, allow_inf_nan=False)
    clear_value: float | None = Field(None, allow_inf_nan=False)
    condition: str | None = Field(None, max_length=60)
    params: dict[str, Any] | None = None
    for_steps: int | None = Field(None, ge=1, le=100_000)
    keep_firing_steps: int | None = Field(None, ge=0, le=100_000)
    warmup_steps: int | None = Field(None, ge=0, le=10_000_000)
    severity: Severity | None = None
    repeat_interval_s: float | None = Field(None, ge=0, le=MAX_REPEAT_S, allow_inf_nan=False)
    labels: Labels | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500)

    def apply(self, spec: RuleSpec) -> RuleSpec:
        """The patched rule; raises ValueError with a readable message when it does not validate."""
        changes = self.model_dump(exclude_unset=True)
        merged = spec.model_dump()
        if "params" in changes and changes.get("detector", spec.detector) == spec.detector:
            changes["params"] = {**spec.params, **(changes["params"] or {})}
        elif "detector" in changes and changes["detector"] != spec.detector:
            merged.update(metric=None, op=None, value=None, clear_value=None, params={})
        if "condition" in changes:
            merged.pop("op"), merged.pop("value")
        merged.update(changes)
        try:
            return RuleSpec.model_validate(merged)
        except ValidationError as exc:
            raise ValueError(brief(exc)) from None


class FileRule(RuleSpec):
    """A rule of the server's rule file; `projects` limits it to some projects."""

    projects: list[DisplayName] | None = None


def brief(exc: ValidationError) -> str:
    """The first errors as one line, "where: what; ..."."""
    return describe_errors(exc.errors(include_url=False, include_context=False, include_input=False))


def spec_hash(spec: RuleSpec) -> str:
    data = spec.model_dump(exclude={"projects"}) if isinstance(spec, FileRule) else spec.model_dump()
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _default(name: str, for_steps: int, keep: int, severity: Severity, description: str) -> RuleSpec:
    return RuleSpec(name=name, detector=name, for_steps=for_steps, keep_firing_steps=keep,
                    severity=severity, description=description)


# Holds (keep_firing_steps) are long on purpose: an episode ends once its condition has been
# clear for that many evaluations, so a signal wandering about its bound makes one episode and
# two messages (bench/detection.py counts re-fired episodes and messages per episode).
DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(name="nonfinite", detector="nonfinite", for_steps=1, keep_firing_steps=20, severity="critical",
             description="NaN or Inf in any logged value (advantages, rewards, loss, ...): fires at once"),
    _default("entropy_collapse", 1, 20, "critical",
             "the mean of the last 10 entropies below 0.3 x the early baseline (mean of the first 10 steps); "
             "clears above 0.4 x"),
    _default("entropy_early_warning", 6, 100, "warning",
             "the entropy forecast (a cautious fit through the last 50 steps) meets the collapse level within "
             "65 steps (half that under failure-heavy mass), at the early edge of its interval; the message "
             "gives the step and the interval"),
    _default("sign_imbalance", 5, 30, "warning",
             "a sign regime whose consequence has begun: success-heavy mass (smoothed |b| > 0.5) with entropy "
             "15% under its baseline, or failure-heavy mass with the head's rank-1 fraction rising"),
    _default("heavy_tails", 1, 20, "warning",
             "max|A|/std > 10, excess kurtosis > 20 or ESS/N < 0.1 (each allowing for what pass/fail rewards "
             "give at the group size and solve rate) on half of the last 20 steps"),
    _default("no_signal", 10, 20, "warning",
             "more than 80% of groups all solved or all failed while the batch mostly fails"),
    _default("diversity_collapse", 5, 30, "warning",
             "distinct completions below 0.5 x baseline, or pass@G - pass@1 below 0.3 x baseline, while "
             "pass@1 is not rising with coverage held (learning)"),
    _default("geometry_collapse", 2, 5, "warning", "rank-1 fraction of the head update above 0.95"),
)
