"""Evaluates newly stored steps inside the ingest transaction.

Per batch: one read of the run's alert states, the rules applied to every new record in
step order (O(records x rules), detectors incremental), then one bulk write of the states
that changed, plus events and outbox rows for transitions. Everything commits with the
steps themselves, so a crash can never lose a notification nor send one for steps that were
not stored; the ingest service runs it inside a savepoint, so its failure costs no step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from fadewatch.server.alerts.evaluation.detectors import DETECTORS
from fadewatch.server.alerts.evaluation.machine import Track, advance
from fadewatch.server.alerts.delivery.diagnosis import diagnosis_card
from fadewatch.server.alerts.delivery.messages import (CONTEXT_KEYS, OUTBOX_FLAG, alert_labels, build_message, diagnose,
                                                       new_message_id, render_for, run_url)
from fadewatch.server.alerts.evaluation.compiled import CompiledRule, effective_rules
from fadewatch.server.alerts.evaluation.rules import FileRule, RuleSpec
from fadewatch.server.alerts.evaluation.silencing import silenced_by
from fadewatch.server.models import Project, Run
from fadewatch.server.store import alerts as store

__all__ = ["AlertContext", "RulePlans", "evaluate", "project_rules"]

log = logging.getLogger("fadewatch.server.alerts")


class RulePlans:
    """Compiled rule plans by (project, stored rule hashes), and stored specs by hash.

    Keys are contents, never object ids; one instance per server (in its AlertContext),
    bounded, and safe to share between the threads that ingest.
    """

    MAX_PLANS, MAX_SPECS = 1024, 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[tuple, list[CompiledRule]] = {}
        self._specs: dict[str, RuleSpec | None] = {}

    def spec(self, digest: str, spec: dict) -> RuleSpec | None:
        with self._lock:
            if digest in self._specs:
                return self._specs[digest]
        try:
            parsed = RuleSpec.model_validate(spec)
        except ValueError:
            log.warning("stored rule %r no longer validates; it is skipped", spec.get("name"))
            parsed = None
        with self._lock:
            if len(self._specs) >= self.MAX_SPECS:
                self._specs.clear()
            self._specs[digest] = parsed
        return parsed

    def plan(self, key: tuple, build: Callable[[], list[CompiledRule]]) -> list[CompiledRule]:
        with self._lock:
            found = self._plans.get(key)
        if found is None:
            found = build()
            with self._lock:
                if len(self._plans) >= self.MAX_PLANS:
                    self._plans.clear()
                self._plans[key] = found
        return found


@dataclass
class AlertContext:
    """What the engine needs from the server it runs in: the rule file, links, the clock."""

    file_rules: list[FileRule] = field(default_factory=list)
    public_url: str = "http://127.0.0.1:8700"
    clock: Callable[[], float] = time.time
    plans: RulePlans = field(default_factory=RulePlans, repr=False)


def project_rules(session: Session, project_id: int, ctx: AlertContext) -> list[CompiledRule]:
    """Enabled rules of the project, critical ones first (so they inhibit within a step)."""
    stored = store.api_rule_specs(session, project_id)
    scoped = any(r.projects for r in ctx.file_rules)
    project = session.get(Project, project_id).name if scoped else None

    def build() -> list[CompiledRule]:
        api = [s for s in (ctx.plans.spec(h, spec) for h, spec in stored) if s is not None]
        rules = [r for r in effective_rules(project, ctx.file_rules, api) if r.spec.enabled]
        return sorted(rules, key=lambda r: r.severity != "critical")

    return ctx.plans.plan((project, tuple(sorted(h for h, _ in stored))), build)


def _axes(records: Sequence, i: int) -> dict:
    """Sign and difficulty scalars at record i, or the latest earlier in the batch."""
    found = {}
    for key in CONTEXT_KEYS:
        for j in range(i, max(-1, i - 64), -1):
            v = records[j].scalars.get(key)
            if v is not None:
                found[key] = v
                break
    return diagnose(found)


class _Batch:
    def __init__(self, session: Session, ctx: AlertContext, run: Run, now: float, tracks: dict[str, Track],
                 plan: list[tuple[CompiledRule, str]]):
        self.session, self.ctx, self.run, self.now, self.tracks = session, ctx, run, now, tracks
        # The rules whose state the diagnosis card reads: the regimes and the entropy forecast.
        self.views = [(r, fp) for r, fp in plan if DETECTORS[r.detector].regime or DETECTORS[r.detector].forecast]
        self.critical = {fp for fp, t in tracks.items() if t.severity == "critical" and t.state == "firing"}
        # Firing but not yet notified (silenced or inhibited): re-checked after every step.
        self.held = {fp for fp, t in tracks.items() if t.state == "firing" and not t.notified}
        # (track, kind, step, muted, notify, title, what it said then): a message tells the step it
        # is about, even when later steps of the batch move the alert on.
        self.events: list[tuple[Track, str, int, str | None, bool, str, dict]] = []
        self._silences = None
        self._project = None

    @property
    def project(self) -> str:
        if self._project is None:
            self._project = self.session.get(Project, self.run.project_id).name
        return self._project

    def labels(self, t: Track) -> dict[str, str]:
        return alert_labels(t.labels, project=self.project, run=self.run.name, run_id=self.run.id,
                            rule=t.rule, severity=t.severity, detector=t.detector)

    def mute(self, t: Track) -> str | None:
        if t.severity != "critical" and self.critical - {t.fingerprint}:
            return "inhibited"
        if self._silences is None:
            self._silences = store.active_silences(self.session, self.run.project_id, self.now)
        silence = silenced_by(self._silences, self.labels(t)) if self._silences else None
        return None if silence is None else f"silenced:{silence}"

    def card(self, t: Track, records, i: int) -> dict:
        """The diagnosis card of a transition: the axes at the step, the run's regimes and forecast."""
        regime = forecast = None
        for rule, fp in self.views:
            d, held = DETECTORS[rule.detector], self.tracks.get(fp)
            if held is None:
                continue
            if regime is None and d.regime is not None:
                regime = d.regime(rule.params, held.memory)
            if forecast is None and d.forecast is not None:
                forecast = d.forecast(rule.params, held.memory)
        return diagnosis_card(_axes(records, i), detector=t.detector, values=t.values, regime=regime,
                              forecast=forecast)

    def transition(self, rule: CompiledRule | None, t: Track, kind: str, step: int, records, i: int) -> None:
        if records is not None:
            t.context = self.card(t, records, i)
        if rule is not None:
            t.summary = rule.describe(t.values or {}, rule.params)
        title = rule.title if rule is not None else DETECTORS[t.detector].title
        if kind == "resolved":
            self.critical.discard(t.fingerprint)
            self.held.discard(t.fingerprint)
            notify, muted = t.notified, (None if t.notified else t.muted)
            t.muted = None
        else:
            if kind == "firing" and t.severity == "critical":
                self.critical.add(t.fingerprint)
            muted = self.mute(t)
            notify = muted is None
            if kind == "repeat" and not notify:
                return
            t.muted = muted
            if notify:
                t.notified, t.last_notified_at = True, self.now
                self.held.discard(t.fingerprint)
            else:
                self.held.add(t.fingerprint)
        t.dirty = True
        said = {"values": t.values, "summary": t.summary, "context": t.context, "fired_step": t.fired_step,
                "resolved_step": t.resolved_step}
        self.events.append((t, kind, step, muted, notify, title, said))

    def release(self, rules: dict[str, CompiledRule], step: int, records, i: int) -> None:
        """Send the firing message of alerts held back until now, if nothing mutes them any more."""
        for fp in sorted(self.held):
            t = self.tracks[fp]
            if t.state != "firing" or t.notified or fp not in rules:
                self.held.discard(fp)
            elif self.mute(t) is None:
                self.transition(rules[fp], t, "firing", step, records, i)

    def finish(self, rules: dict[str, CompiledRule]) -> None:
        for t in self.tracks.values():
            if t.fingerprint in rules or t.state not in ("pending", "firing"):
                continue
            # Its rule was removed, disabled or relabelled: the episode ends here.
            if t.state == "pending":
                t.state, t.active_count, t.pending_step, t.dirty = "inactive", 0, None, True
                continue
            t.state, t.resolved_step, t.resolved_at = "resolved", t.last_step or 0, self.now
            t.values, t.summary = {"reason": "rule removed or disabled"}, "the rule was removed or disabled"
            self.transition(None, t, "resolved", t.resolved_step, None, 0)

    def write(self) -> None:
        dirty = [t for t in self.tracks.values() if t.dirty]
        if dirty:
            store.save_tracks(self.session, self.run.id, self.run.project_id, dirty, self.now)
        if not self.events:
            return
        channels = store.enabled_channels(self.session, self.run.project_id)
        rows = []
        for t, kind, step, muted, notify, title, said in self.events:
            event_id = store.add_event(self.session, t, kind, step, self.now, muted, said["values"], said["context"],
                                       said["summary"])
            if not notify:
                continue
            for channel_id, channel_name, channel_kind in channels:
                message_id = new_message_id()
                message = build_message(
                    event=kind, message_id=message_id, now=self.now, alert_id=t.id,
                    fingerprint=t.fingerprint, rule=t.rule, title=title, detector=t.detector,
                    severity=t.severity, labels=self.labels(t), summary=said["summary"] or "", step=step,
                    fired_step=said["fired_step"], resolved_step=said["resolved_step"], values=said["values"],
                    context=said["context"], run_id=self.run.id, run_name=self.run.name,
                    project=self.project, url=run_url(self.ctx.public_url, self.run.id),
                )
                rows.append({
                    "message_id": message_id, "project_id": self.run.project_id, "event_id": event_id,
                    "channel_id": channel_id, "channel_name": channel_name, "kind": kind,
                    "body": render_for(channel_kind, message), "status": "pending", "attempts": 0,
                    "created_at": self.now, "next_attempt_at": self.now, "lease_until": None,
                    "delivered_at": None, "last_error": None,
                })
        store.add_notifications(self.session, rows)
        if rows:
            self.session.info[OUTBOX_FLAG] = True


def evaluate(session: Session, ctx: AlertContext, run_id: int, records: Sequence, now: float | None = None) -> None:
    """Run the project's rules over newly stored step records (in step order) of one run.

    Any error propagates: the ingest service runs this inside a savepoint, so a failure here
    rolls back the alert writes alone and never the steps.
    """
    if not records:
        return
    now = ctx.clock() if now is None else now
    run = session.get(Run, run_id)
    rules = project_rules(session, run.project_id, ctx)
    tracks = store.load_tracks(session, run_id)
    plan = [(rule, rule.fingerprint(run_id)) for rule in rules]
    batch = _Batch(session, ctx, run, now, tracks, plan)
    by_fingerprint = {fp: rule for rule, fp in plan}
    for i, rec in enumerate(records):
        step, scalars, nonfinite = rec.step, rec.scalars, rec.nonfinite
        for rule, fp in plan:
            t = tracks.get(fp)
            if t is None:
                t = tracks[fp] = Track.for_rule(rule, fp)
            elif t.last_step is not None and step <= t.last_step:
                continue  # a late step: stored, but alert state only moves forward
            if t.rule_hash != rule.hash:
                t.adopt(rule)
            kind = advance(rule, t, step, scalars, nonfinite, now)
            if kind is not None:
                batch.transition(rule, t, kind, step, records, i)
        if batch.held:
            batch.release(by_fingerprint, step, records, i)
    batch.finish(by_fingerprint)
    batch.write()
