"""What a notification says: one message document, rendered per channel kind.

The message names the run, the step, the rule, the values that tripped it, its diagnosis
card (diagnosis.py: the regimes, the forecast, a suggested action, and what the sign and
difficulty axes say is happening), and links to the run's page in the dashboard.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from fadewatch.server.alerts.delivery import slack, webhooks

__all__ = ["CONTEXT_KEYS", "OUTBOX_FLAG", "diagnose", "build_message", "test_message", "run_url", "alert_labels",
           "new_message_id", "render_for"]

# Set in Session.info by a transaction that queued notifications: the delivery worker wakes
# at its commit instead of at its next poll.
OUTBOX_FLAG = "fadewatch.outbox"

SIGN_KEYS = ("sign/balance", "sign/m_pos", "sign/m_neg")
DIFFICULTY_KEYS = ("difficulty/solve_rate", "difficulty/no_signal_frac", "difficulty/peak", "difficulty/ess_frac")
CONTEXT_KEYS = SIGN_KEYS + DIFFICULTY_KEYS + ("entropy/mean",)


def _sign_reading(b: float | None) -> str:
    if b is None:
        return "not logged (log advantages to see the sign axis)"
    if b > 0.2:
        return (f"success-heavy (b = {b:+.2f}): positive advantage mass dominates, "
                "which drives policy entropy down")
    if b < -0.2:
        return (f"failure-heavy (b = {b:+.2f}): negative mass dominates; entropy holds up, "
                "but the output-head update concentrates into one direction")
    return f"balanced (b = {b:+.2f})"


def _difficulty_reading(d: dict[str, float]) -> str:
    parts = []
    if (p := d.get("difficulty/solve_rate")) is not None:
        parts.append(f"solve rate {p:.2f}")
    if (ns := d.get("difficulty/no_signal_frac")) is not None:
        parts.append(f"{ns:.0%} of groups all solved or all failed (no signal)")
    if (peak := d.get("difficulty/peak")) is not None:
        where = "hard" if peak < 0.35 else "easy" if peak > 0.65 else "mid-difficulty"
        parts.append(f"update mass sits on {where} prompts (p* = {peak:.2f})")
    if (ess := d.get("difficulty/ess_frac")) is not None:
        parts.append(f"ESS/N {ess:.2f}")
    return "; ".join(parts) if parts else "not logged (log rewards and group ids to see the difficulty axis)"


def diagnose(scalars: dict[str, Any]) -> dict[str, Any]:
    """The sign and difficulty axes at a step, with a one-line reading of each."""
    sign = {k: scalars[k] for k in SIGN_KEYS if scalars.get(k) is not None}
    difficulty = {k: scalars[k] for k in DIFFICULTY_KEYS if scalars.get(k) is not None}
    return {
        "sign": {**sign, "reading": _sign_reading(sign.get("sign/balance"))},
        "difficulty": {**difficulty, "reading": _difficulty_reading(difficulty)},
    }


def run_url(public_url: str, run_id: int) -> str:
    return f"{public_url.rstrip('/')}/runs/{run_id}"


def alert_labels(labels: dict, *, project: str, run: str, run_id: int, rule: str,
                 severity: str, detector: str) -> dict[str, str]:
    """Every label an alert carries: the rule's own and the ones the server sets."""
    return {**labels, "project": project, "run": run, "run_id": str(run_id), "rule": rule,
            "severity": severity, "detector": detector}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def build_message(
    *, event: str, message_id: str, now: float, alert_id: int, fingerprint: str, rule: str,
    title: str, detector: str, severity: str, labels: dict, summary: str, step: int,
    fired_step: int | None, resolved_step: int | None, values: dict | None, context: dict | None,
    run_id: int, run_name: str, project: str, url: str,
) -> dict[str, Any]:
    status = "resolved" if event == "resolved" else "firing"
    return {
        "type": f"alert.{event}",
        "timestamp": _iso(now),
        "data": {
            "message_id": message_id,
            "event": event,
            "status": status,
            "alert": {"id": alert_id, "fingerprint": fingerprint, "rule": rule, "title": title,
                      "detector": detector, "severity": severity, "labels": labels,
                      "summary": summary},
            "run": {"id": run_id, "name": run_name, "project": project, "url": url},
            "step": step,
            "fired_step": fired_step,
            "resolved_step": resolved_step,
            "values": values or {},
            "diagnosis": context or diagnose({}),
        },
    }


def test_message(*, message_id: str, now: float, project: str, channel: str, url: str) -> dict[str, Any]:
    return {
        "type": "alert.test",
        "timestamp": _iso(now),
        "data": {
            "message_id": message_id,
            "event": "test",
            "status": "test",
            "summary": f"Test notification for channel {channel!r} of project {project!r}",
            "project": project,
            "url": url,
        },
    }


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def render_for(kind: str, message: dict) -> str:
    """The request body of a message for a channel kind."""
    return slack.render(message) if kind == "slack" else webhooks.render(message)
