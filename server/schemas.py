"""Wire format of API v1 (docs/wire-format.md), validated with pydantic."""

from __future__ import annotations

import math
import operator
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from fadewatch.protocol.limits import MAX_ERROR_CHARS, MAX_NAME_LENGTH, MAX_SAMPLE_CHARS, MAX_STEP
from fadewatch.protocol.names import check_display_name, check_metric_name
from fadewatch.protocol.rollouts import MAX_GROUPS
from fadewatch.server.rollout_schemas import RolloutGroupIn, group_key

__all__ = [
    "MetricName",
    "UtcDateTime",
    "Histogram",
    "Sample",
    "StepRecord",
    "StepBatch",
    "IngestResult",
    "RunCreate",
    "RunPatch",
    "RunOut",
    "RunList",
    "RunSort",
    "AlertBrief",
    "ProjectOut",
    "ProjectList",
    "RunStatus",
]

# Names found valid already. A batch repeats the same few dozen names on every step, and a
# set lookup costs a fraction of the rule's regex and calls; only valid names enter, so a
# bad name always meets the rule (and its message). Bounded, shared by the ingest threads.
_VALID_METRIC_NAMES: set[str] = set()
_MAX_REMEMBERED_NAMES = 100_000


def _metric_name(value: str) -> str:
    if value in _VALID_METRIC_NAMES:
        return value
    check_metric_name(value)
    if len(_VALID_METRIC_NAMES) >= _MAX_REMEMBERED_NAMES:
        _VALID_METRIC_NAMES.clear()
    _VALID_METRIC_NAMES.add(value)
    return value


# The rules are fadewatch.protocol's; the length bounds stay on the Field for the OpenAPI.
MetricName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_metric_name)]
DisplayName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(check_display_name)]
RunStatus = Literal["running", "finished", "failed", "crashed"]


def finite_or_none(value: float | None) -> float | None:
    if value is None or math.isfinite(value):
        return value
    return None


def as_utc(value: datetime) -> datetime:
    # SQLite hands back times without their zone; every time stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


# A time in an answer: RFC 3339 with its offset, as the OpenAPI's date-time format requires.
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
OptionalFloat = Annotated[float | None, AfterValidator(finite_or_none)]
# Checked in pydantic's core, not in a Python loop: counts are the bulk of a batch.
Count = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Histogram(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counts: list[Count] = Field(min_length=1)
    edges: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None
    lo: float | None = None
    hi: float | None = None
    bins: int | None = Field(default=None, ge=1)
    underflow: Count = 0.0
    overflow: Count = 0.0
    count: float | None = Field(default=None, ge=0)
    # Non-finite statistics read as absent (None): done once per histogram in _check_shape,
    # not by a validator call per value, which costs more than the whole check.
    sum: float | None = None
    sum_sq: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float | None] | None = None
    labels: list[Annotated[str, Field(max_length=200)]] | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> Histogram:
        # Runs for every histogram of every step: attributes are set only when they change
        # (a model's __setattr__ is costly), and the all-finite case is checked in C.
        stats = (self.sum, self.sum_sq, self.min, self.max)
        if not _all_finite(stats):
            self.sum, self.sum_sq, self.min, self.max = map(finite_or_none, stats)
        n = len(self.counts)
        if self.edges is not None:
            if len(self.edges) != n + 1:
                raise ValueError(f"edges must have len(counts) + 1 = {n + 1} values")
            if not all(map(operator.le, self.edges, self.edges[1:])):
                raise ValueError("edges must be non-decreasing")
        elif self.lo is None or self.hi is None:
            raise ValueError("give either edges or lo, hi (and optionally bins)")
        else:
            if not (math.isfinite(self.lo) and math.isfinite(self.hi)) or self.hi <= self.lo:
                raise ValueError("lo and hi must be finite with lo < hi")
            if self.bins is not None and self.bins != n:
                raise ValueError(f"bins is {self.bins} but counts has {n} values")
            if self.bins is None:
                self.bins = n
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels must have one entry per bin ({n})")
        if self.count is None:
            # Each count is finite, but their sum can still pass the largest float.
            try:
                total = math.fsum(self.counts) + self.underflow + self.overflow
            except OverflowError:
                total = math.inf
            if not math.isfinite(total):
                raise ValueError("the counts add up past the largest float")
            self.count = total
        if self.quantiles is not None:
            for key in self.quantiles:
                if key not in _VALID_QUANTILE_KEYS:
                    _check_quantile_key(key)
            if not _all_finite(self.quantiles.values()):
                for key, value in self.quantiles.items():
                    self.quantiles[key] = finite_or_none(value)
        return self


# Quantile keys found valid already ("0.05", "0.5", ...): the same few on every histogram.
_VALID_QUANTILE_KEYS: set[str] = set()


def _check_quantile_key(key: str) -> None:
    try:
        q = float(key)
    except ValueError:
        raise ValueError(f"quantile key {key!r} is not a number") from None
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile key {key!r} is outside [0, 1]")
    if len(_VALID_QUANTILE_KEYS) >= _MAX_REMEMBERED_NAMES:
        _VALID_QUANTILE_KEYS.clear()
    _VALID_QUANTILE_KEYS.add(key)


def _all_finite(values) -> bool:
    """Whether every value that is not None is finite, in C: a sum of finite values is finite
    unless it overflows, and then this says False and the caller checks one by one."""
    return math.isfinite(sum(filter(None, values)))


class Sample(BaseModel):
    """The hook's earlier per-step completions; stored as rollouts without a prompt."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_SAMPLE_CHARS)
    group: str | int | None = None
    reward: OptionalFloat = None
    advantage: OptionalFloat = None


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0, le=MAX_STEP)
    time: OptionalFloat = None
    scalars: dict[MetricName, float | None] = Field(default_factory=dict)
    histograms: dict[MetricName, Histogram] = Field(default_factory=dict)
    samples: list[Sample] | None = Field(None, description="earlier format of rollouts: completions without "
                                                               "prompts; stored as rollouts")
    rollouts: list[RolloutGroupIn] | None = Field(None, max_length=MAX_GROUPS,
                                                  description="whole groups of rollouts kept at this step")
    nonfinite: list[MetricName] | None = None

    @model_validator(mode="after")
    def _check_record(self) -> StepRecord:
        # One validator, not two: it runs for every step of every batch.
        if self.rollouts:
            keys = [group_key(g.group) for g in self.rollouts]
            if len(set(keys)) != len(keys):
                raise ValueError("rollouts: each group may appear once per step")
        return self._flag_nonfinite()

    def _flag_nonfinite(self) -> StepRecord:
        # The usual case: all finite and nothing flagged.
        if not self.nonfinite and _all_finite(self.scalars.values()):
            self.nonfinite = None
            return self
        flagged = set(self.nonfinite or ())
        for name, value in self.scalars.items():
            if value is not None and not math.isfinite(value):
                self.scalars[name] = None
                flagged.add(name)
        self.nonfinite = sorted(flagged) or None
        return self


class StepBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[StepRecord]


class IngestResult(BaseModel):
    stored: int
    duplicates: int
    duplicate_steps: list[int]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: DisplayName
    name: DisplayName
    config: dict[str, Any] | None = None


class RunPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: RunStatus
    error: str | None = Field(
        default=None, max_length=MAX_ERROR_CHARS,
        description="What ended a failed or crashed run, e.g. the exception's type and message.",
    )


class AlertBrief(BaseModel):
    """The newest alert of a run, as the runs page shows it."""

    id: int
    rule: str
    severity: str
    state: str
    step: int | None = Field(description="where the episode fired (or, while pending, started)")
    summary: str | None


class RunOut(BaseModel):
    id: int
    project: str
    name: str
    status: RunStatus
    config: dict[str, Any] | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    last_step: int | None
    last_time: float | None
    step_count: int
    summary: dict[str, float | None] | None
    error: str | None = None
    alerts_firing: int = Field(0, description="alerts of this run firing now")
    latest_alert: AlertBrief | None = Field(None, description="its most recently changed alert, if any")


class RunList(BaseModel):
    runs: list[RunOut]
    total: int = Field(description="runs matching the filters, over all pages")


RunSort = Literal["updated", "created", "name", "last_step", "alerts_firing"]


class ProjectOut(BaseModel):
    name: str
    runs: int
    running: int
    last_activity: UtcDateTime | None


class ProjectList(BaseModel):
    projects: list[ProjectOut]
