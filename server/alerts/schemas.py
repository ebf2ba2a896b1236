"""API models of alerts, rules, channels and silences."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fadewatch.server.alerts.evaluation.rules import RuleName, RuleSpec
from fadewatch.server.alerts.evaluation.silencing import Matcher

__all__ = [
    "AlertStateName", "AlertOut", "AlertList", "AttemptOut", "NotificationOut", "EventOut", "EpisodeOut", "AlertDetail",
    "RuleOut", "RuleList", "ChannelIn", "ChannelPatch", "ChannelOut", "ChannelList", "ChannelTestResult",
    "SilenceIn", "SilenceOut", "SilenceList",
]

AlertStateName = Literal["inactive", "pending", "firing", "resolved"]
ChannelKind = Literal["slack", "webhook"]


class AlertOut(BaseModel):
    id: int
    project: str
    run_id: int
    run_name: str
    fingerprint: str
    rule: str
    detector: str
    severity: str
    labels: dict[str, str]
    state: AlertStateName
    step: int | None = Field(description="where the current episode fired (or, while pending, started)")
    summary: str | None
    values: dict[str, Any] | None = Field(description="the values that tripped the rule (latest while firing)")
    diagnosis: dict[str, Any] | None = Field(description="sign and difficulty axes when it fired or resolved")
    pending_step: int | None
    fired_step: int | None
    resolved_step: int | None
    last_step: int | None
    fired_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    notified: bool = Field(description="the firing message of this episode was sent")
    muted: str | None = Field(description="why notifications are held back: inhibited, silenced:<id>")
    episode: int = Field(description="the number of the current (or latest) episode, 1 for the first; 0 before "
                                     "the alert first fires")
    url: str = Field(description="the run's page in the dashboard")


class AlertList(BaseModel):
    alerts: list[AlertOut]
    total: int = Field(description="alerts matching the filters, over all pages")


class AttemptOut(BaseModel):
    at: datetime
    outcome: Literal["delivered", "retry", "failed"]
    status_code: int | None
    error: str | None
    duration_ms: float


class NotificationOut(BaseModel):
    message_id: str = Field(description="stable across retries: the webhook-id receivers dedupe by")
    channel_id: int | None
    channel_name: str
    kind: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    log: list[AttemptOut]


class EventOut(BaseModel):
    id: int
    kind: Literal["firing", "resolved", "repeat"]
    step: int
    at: datetime
    severity: str
    summary: str | None
    values: dict[str, Any] | None
    diagnosis: dict[str, Any] | None
    muted: str | None
    notifications: list[NotificationOut]


class EpisodeOut(BaseModel):
    """One episode: from the step the alert fired to the step it resolved (None while it fires)."""

    number: int
    fired_step: int
    resolved_step: int | None
    fired_at: datetime
    resolved_at: datetime | None
    notified: bool = Field(description="its firing message went out (false: it was muted throughout)")


class AlertDetail(AlertOut):
    episodes: list[EpisodeOut] = Field(description="every episode, oldest first, each with its first firing step")
    events: list[EventOut]


class RuleOut(RuleSpec):
    source: Literal["default", "file", "api"] = Field(
        description="where the rule comes from: built-in default, the server's rule file, or the API")
    overrides: Literal["default", "file"] | None = Field(
        None, description="an API or file rule that replaces a rule of this name from a lower source")


class RuleList(BaseModel):
    rules: list[RuleOut]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    kind: ChannelKind
    url: str = Field(min_length=1, max_length=2000)
    secret: str | None = Field(None, min_length=1, max_length=200,
                               description="webhook channels: base64 signing key (24-64 bytes), optionally whsec_-prefixed; never returned")
    enabled: bool = True

    @model_validator(mode="after")
    def _secret_fits_kind(self) -> ChannelIn:
        if self.kind == "webhook" and self.secret is None:
            raise ValueError("a webhook channel needs a secret to sign with, e.g. whsec_ + base64 of 32 random bytes")
        if self.kind == "slack" and self.secret is not None:
            raise ValueError("slack channels take no secret: the webhook URL itself is the secret")
        return self


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName | None = None
    url: str | None = Field(None, min_length=1, max_length=2000)
    secret: str | None = Field(None, min_length=1, max_length=200)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ChannelPatch:
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null: leave a field out to keep its value")
        return self


class ChannelOut(BaseModel):
    id: int
    project: str
    name: str
    kind: ChannelKind
    url: str = Field(description="the target, with its secret parts (Slack path, query string) masked")
    has_secret: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class ChannelTestResult(BaseModel):
    message_id: str
    outcome: Literal["delivered", "retry", "failed"] = Field(
        description="delivered: the receiver answered 2xx; retry: a passing failure; failed: it will not work as is")
    status_code: int | None
    error: str | None
    duration_ms: float


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[Matcher] = Field(min_length=1, max_length=20)
    starts_at: datetime | None = Field(None, description="default: now")
    ends_at: datetime | None = None
    duration_s: float | None = Field(None, gt=0, le=366 * 86_400, allow_inf_nan=False)
    comment: str | None = Field(None, max_length=500)
    created_by: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self


class SilenceOut(BaseModel):
    id: int
    project: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    created_by: str | None
    created_at: datetime
    active: bool


class SilenceList(BaseModel):
    silences: list[SilenceOut]


class MarkerOut(BaseModel):
    """One alert transition drawn on a run's charts."""

    event_id: int
    alert_id: int
    step: int
    kind: Literal["firing", "resolved", "repeat"]
    rule: str
    severity: str
    summary: str | None


class MarkerList(BaseModel):
    run_id: int
    markers: list[MarkerOut] = Field(description="oldest first (by step, then event)")


class ForecastOut(BaseModel):
    """Where a watched metric is heading, read from the state of the rule that alerts on it."""

    run_id: int
    rule: str | None = Field(description="the rule whose state this is; None when no rule forecasts")
    metric: str | None
    step: int | None = Field(description="the newest step the rule has seen")
    value: float | None = Field(description="the metric at that step")
    baseline: float | None
    collapse_level: float | None
    fitted: float | None = Field(description="the forecast value at `step`")
    slope: float | None = Field(description="the forecast change per step at `step`")
    projected_step: int | None = Field(description="where the forecast meets the collapse level")
    early_step: int | None = Field(None, description="the interval's earliest step to meet the level")
    late_step: int | None = Field(None, description="the interval's latest step to meet the level (None: the "
                                                     "shallow edge of the interval does not fall)")
    horizon: int | None = Field(description="how far ahead a projection may warn")
    signals: list[str] = Field(description="the signals that fire now")
    firing: bool = Field(description="the rule's alert is firing")


class RegimeSide(BaseModel):
    state: str | None = Field(description="sign: success-heavy, balanced, failure-heavy; difficulty: hard, mid, easy")
    value: float | None = Field(description="the smoothed sign balance b, or the smoothed solve rate")
    since_step: int | None
    reading: str


class RegimeSpan(BaseModel):
    start: int
    end: int | None = Field(description="None: still in this regime")
    sign: str | None
    difficulty: str | None


class RegimeOut(BaseModel):
    """The run's sign and difficulty regimes, as the rule that holds them (sign_imbalance) reads them."""

    run_id: int
    rule: str | None = Field(description="the rule whose state this is; None when no enabled rule holds regimes")
    step: int | None = Field(description="the newest step the rule has seen")
    sign: RegimeSide | None
    difficulty: RegimeSide | None
    consequence: str | None = Field(description="the regime's predicted consequence, when it has begun")
    note: str | None = Field(description="what the regime predicts, or why it cannot tell")
    spans: list[RegimeSpan] = Field(description="the regimes over the run, oldest first, for the charts' bands")
