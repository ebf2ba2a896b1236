"""The state machine of one (run, rule, labels) fingerprint, fed one step at a time.

    inactive ──trip──► pending ──trip for for_steps──► firing ──clear for keep_firing_steps + 1──► resolved
        ▲                 │ no trip                       │ trip, repeat_interval_s passed: "repeat"
        └─────────────────┘                               ▼
    (resolved behaves as inactive: the next trip starts a new pending episode)

One episode is one firing and one resolution. Once firing, an alert stays firing until its
condition has been clear for a hold period (keep_firing_steps + 1 consecutive clear
evaluations, Alertmanager's keep_firing_for); a detector with hysteresis clears at a
stricter bound than it trips at (Verdict.clear), so a step between the bounds holds the
alert and restarts the hold. Noise around a threshold therefore makes one episode.

Pure: no database, no clock of its own. The engine persists Track rows and the bench
replays streams through the very same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fadewatch.server.alerts.evaluation.compiled import CompiledRule

__all__ = ["Track", "advance", "STATES"]

STATES = ("inactive", "pending", "firing", "resolved")


@dataclass(slots=True)
class Track:
    fingerprint: str
    rule: str
    detector: str
    severity: str
    labels: dict
    rule_hash: str
    id: int | None = None
    state: str = "inactive"
    active_count: int = 0
    clear_count: int = 0
    evaluations: int = 0
    last_step: int | None = None
    pending_step: int | None = None
    fired_step: int | None = None
    resolved_step: int | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    last_notified_at: float | None = None
    notified: bool = False
    muted: str | None = None
    values: dict | None = None
    context: dict | None = None
    summary: str | None = None
    memory: dict = field(default_factory=dict)
    # Set when something worth persisting changed; an idle track is never rewritten.
    dirty: bool = False

    @classmethod
    def for_rule(cls, rule: CompiledRule, fingerprint: str) -> Track:
        return cls(fingerprint=fingerprint, rule=rule.name, detector=rule.detector,
                   severity=rule.severity, labels=rule.labels, rule_hash=rule.hash)

    def adopt(self, rule: CompiledRule) -> None:
        """The rule changed since this track last ran: its detector starts learning afresh."""
        self.memory = {}
        self.evaluations = 0
        self.rule_hash, self.severity, self.detector = rule.hash, rule.severity, rule.detector
        self.dirty = True


def advance(rule: CompiledRule, t: Track, step: int, scalars: dict, nonfinite, now: float) -> str | None:
    """Feed one step; returns "firing", "resolved" or "repeat" when that transition happens."""
    verdict = rule.step(rule.params, t.memory, step, scalars, nonfinite)
    t.last_step = step
    if t.memory:
        t.dirty = True
    if verdict is None:
        return None
    t.evaluations += 1
    if t.evaluations <= rule.warmup_steps:
        t.dirty = True
        return None
    hit, values, clear = verdict
    state = t.state
    if state == "firing":
        t.dirty = True
        if hit or clear is False:  # still tripping, or inside the hysteresis band: the hold restarts
            t.values, t.clear_count = values, 0
            if (hit and rule.repeat_interval_s > 0 and t.notified and t.last_notified_at is not None
                    and now - t.last_notified_at >= rule.repeat_interval_s):
                return "repeat"
            return None
        t.clear_count += 1
        if t.clear_count > rule.keep_firing_steps:
            t.state, t.resolved_step, t.resolved_at, t.values = "resolved", step, now, values
            t.active_count = t.clear_count = 0
            return "resolved"
        return None
    if hit:
        t.dirty = True
        t.active_count += 1
        if state != "pending":
            t.state, t.pending_step = "pending", step
        if t.active_count >= rule.for_steps:
            t.state, t.fired_step, t.fired_at, t.values = "firing", step, now, values
            t.resolved_step = t.resolved_at = None
            t.notified, t.muted, t.clear_count = False, None, 0
            return "firing"
        return None
    if state == "pending":
        t.state = "resolved" if t.resolved_step is not None else "inactive"
        t.active_count, t.pending_step, t.dirty = 0, None, True
    return None
