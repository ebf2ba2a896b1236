"""Slack incoming webhooks: Block Kit blocks, with `text` as the fallback for notifications."""

from __future__ import annotations

import orjson

__all__ = ["render"]

_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "resolved": ":white_check_mark:",
         "test": ":information_source:"}
_SKIP = {"tripped", "signals"}


def _esc(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v[:10]) or "-"
    return "n/a" if v is None else str(v)


def _alert_blocks(d: dict) -> tuple[str, list[dict]]:
    alert, run = d["alert"], d["run"]
    resolved = d["event"] == "resolved"
    icon = _ICON["resolved" if resolved else alert["severity"]]
    verb = {"firing": "firing", "repeat": "still firing", "resolved": "resolved"}[d["event"]]
    where = f"{run['project']} / {run['name']}"
    fallback = (f"[{alert['severity'].upper()}] {alert['title']} {verb} on {where} at step {d['step']}: "
                f"{alert['summary']}")
    fields = [
        {"type": "mrkdwn", "text": f"*Run*\n<{run['url']}|{_esc(_cut(where, 200))}>"},
        {"type": "mrkdwn", "text": f"*Step*\n{d['step']}"},
        {"type": "mrkdwn", "text": f"*Rule*\n`{_esc(alert['rule'])}`"},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert['severity']}"},
    ]
    values = [f"{_esc(k)}: {_esc(_num(v))}" for k, v in d.get("values", {}).items() if k not in _SKIP]
    if values:
        fields.append({"type": "mrkdwn", "text": _cut("*Values*\n" + "\n".join(values[:12]), 1900)})
    diag = d.get("diagnosis") or {}
    card = [(label, diag.get(key)) for label, key in (("Regime", "regime"), ("Tripped by", "tripped"),
                                                      ("Forecast", "forecast"), ("Suggested action", "action"))]
    axes = "\n".join([f"*{label}:* {_esc(text)}" for label, text in card if text]
                     + [f"*Sign axis:* {_esc(diag.get('sign', {}).get('reading', 'n/a'))}",
                        f"*Difficulty axis:* {_esc(diag.get('difficulty', {}).get('reading', 'n/a'))}"])
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"{icon} {alert['title']} {verb}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(alert["summary"]), 2900)}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(axes, 2900)}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open run"},
                                          "url": run["url"]}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(
            f"fadewatch alert {alert['id']} · fingerprint {alert['fingerprint']} · {d['message_id']}")}]},
    ]
    return fallback, blocks


def render(message: dict) -> str:
    d = message["data"]
    if d["event"] == "test":
        text = d["summary"]
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"{_ICON['test']} {_esc(text)}"}}]
    else:
        text, blocks = _alert_blocks(d)
    return orjson.dumps({"text": _cut(text, 3000), "blocks": blocks}).decode()
