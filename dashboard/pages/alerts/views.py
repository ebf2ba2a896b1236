"""Layout pieces of the alerts page: the alert list and detail, and the settings tables and forms.

Pure builders: API answers in, Dash components out. Every string from the server goes in
as a child (a text node), never as markup.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from dash import dcc, html

from fadewatch.dashboard.context import href
from fadewatch.dashboard.ui import badge, empty_state, fmt_age, fmt_num

__all__ = ["alerts_table", "alert_detail", "diagnosis_card", "rules_table", "rule_form", "channels_table",
           "channel_form",
           "silences_table", "silence_form", "fmt_time", "DETECTORS"]

DETECTORS = ["threshold", "nonfinite", "entropy_collapse", "entropy_early_warning", "sign_imbalance",
             "heavy_tails", "no_signal", "diversity_collapse", "geometry_collapse"]


def fmt_time(iso: str | None) -> str:
    """'2026-12-02 14:03:11 UTC (5 min ago)' from the API's ISO time."""
    if not iso:
        return "–"
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({fmt_age(when.timestamp())})"


def _values(values: dict | None) -> str:
    if not values:
        return "–"
    return ", ".join(f"{k} = {fmt_num(v) if isinstance(v, (int, float)) else v}" for k, v in values.items())


def _button(label: str, button_id, kind: str = "") -> html.Button:
    return html.Button(label, id=button_id, n_clicks=0, className=f"fw-button small {kind}".strip())


def _table(head: list[str], rows: list, table_id: str) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
                      className="fw-table", id=table_id)


def alerts_table(alerts: list[dict], total: int | None = None) -> html.Div:
    if not alerts:
        return empty_state("No alerts match.", "Alerts appear here when a rule trips on a run's steps; the "
                           "built-in rules watch every run without any setup.")
    rows = [html.Tr([
        html.Td(badge(a["state"])),
        html.Td(badge(a["severity"])),
        html.Td(a["rule"]),
        html.Td(dcc.Link(a["run_name"], href=href(f"runs/{a['run_id']}"))),
        html.Td("–" if a.get("step") is None else f"{a['step']:,}" + (f" (episode {a['episode']})"
                                                                      if a.get("episode", 0) > 1 else ""),
                className="num"),
        html.Td(a.get("summary") or "–", className="fw-wrap"),
        html.Td("muted: " + a["muted"] if a.get("muted") else ("notified" if a.get("notified") else "–")),
        html.Td(_button("Details", {"type": "alerts-open", "id": a["id"]})),
    ], id={"type": "alerts-row", "id": a["id"]}) for a in alerts]
    table = _table(["State", "Severity", "Rule", "Run", "Step", "Summary", "Notification", ""], rows,
                   "alerts-table-el")
    more = [html.P(f"Showing {len(alerts)} of {total:,}.", className="fw-hint")] if total and total > len(alerts) else []
    return html.Div([table, *more])


def _attempts(log: list[dict]) -> html.Ul:
    return html.Ul([html.Li(f"{fmt_time(a['at'])}: {a['outcome']}"
                            + (f", HTTP {a['status_code']}" if a.get("status_code") else "")
                            + (f", {a['error']}" if a.get("error") else "")
                            + f" ({a['duration_ms']:.0f} ms)") for a in log], className="fw-log")


def _notifications(notes: list[dict]) -> list:
    if not notes:
        return [html.Span("no message (no channel, or muted)", className="fw-hint")]
    return [html.Div([
        html.Span([html.B(n["channel_name"]), f" ({n['kind']}) ", badge(n["status"]),
                   f" {n['attempts']} attempt{'s' if n['attempts'] != 1 else ''}"]),
        html.Div(n["last_error"], className="fw-error") if n.get("last_error") else None,
        _attempts(n.get("log") or []),
    ], className="fw-notification") for n in notes]


def diagnosis_card(d: dict | None) -> html.Div:
    """The alert's diagnosis card, as its messages carry it: regime, numbers, forecast, action, axes."""
    d = d or {}
    rows = [(label, d.get(key)) for label, key in (("Regime", "regime"), ("Tripped by", "tripped"),
                                                   ("Forecast", "forecast"), ("Suggested action", "action"))]
    rows += [("Sign axis", (d.get("sign") or {}).get("reading")),
             ("Difficulty axis", (d.get("difficulty") or {}).get("reading"))]
    return html.Div(className="fw-card fw-diagnosis", id="alerts-diagnosis", children=[
        html.H3("Diagnosis", className="fw-subsection"),
        html.Dl([part for label, text in rows if text for part in (html.Dt(label), html.Dd(text))]),
    ])


def _episodes(episodes: list[dict]) -> html.Table | html.P:
    if not episodes:
        return html.P("It has not fired yet.", className="fw-hint")
    rows = [html.Tr([html.Td(f"#{e['number']}"), html.Td(f"{e['fired_step']:,}", className="num"),
                     html.Td("firing" if e.get("resolved_step") is None else f"{e['resolved_step']:,}", className="num"),
                     html.Td("notified" if e.get("notified") else "muted")]) for e in episodes]
    return _table(["Episode", "Fired at step", "Resolved at step", "Messages"], rows, "alerts-episodes-el")


def alert_detail(a: dict) -> html.Div:
    events = [html.Tr([
        html.Td(badge(e["kind"])),
        html.Td(f"{e['step']:,}", className="num"),
        html.Td(fmt_time(e["at"])),
        html.Td([html.Div(e.get("summary") or "–"), html.Div(_values(e.get("values")), className="fw-hint"),
                 html.Div("muted: " + e["muted"], className="fw-hint") if e.get("muted") else None]),
        html.Td(_notifications(e.get("notifications") or [])),
    ]) for e in reversed(a.get("events") or [])]
    return html.Div(className="fw-detail", id="alerts-detail-card", children=[
        html.H2([f"{a['rule']} on ", dcc.Link(a["run_name"], href=href(f"runs/{a['run_id']}")), " ",
                 badge(a["state"]), " ", badge(a["severity"])], className="fw-section"),
        html.Div(className="fw-meta", children=[
            html.Span(["project ", html.B(a["project"])]), html.Span(["detector ", html.B(a["detector"])]),
            html.Span(["fired at step ", html.B("–" if a.get("fired_step") is None else f"{a['fired_step']:,}")]),
            html.Span(["resolved at step ", html.B("–" if a.get("resolved_step") is None
                                                   else f"{a['resolved_step']:,}")]),
            html.Span(["labels ", html.B(", ".join(f"{k}={v}" for k, v in (a.get("labels") or {}).items()) or "–")]),
        ]),
        html.P(a.get("summary") or "", className="fw-summary"),
        html.P(["Values: ", _values(a.get("values"))], className="fw-hint"),
        diagnosis_card(a.get("diagnosis")),
        html.Details([html.Summary("Diagnosis as sent (JSON)"),
                      html.Pre(json.dumps(a.get("diagnosis") or {}, indent=2, sort_keys=True), className="fw-pre")]),
        html.H3("Episodes", className="fw-subsection"),
        _episodes(a.get("episodes") or []),
        html.H3("Events and delivery log", className="fw-subsection"),
        _table(["Event", "Step", "When", "What", "Messages"], events, "alerts-events-el") if events
        else html.P("No events yet: the alert is pending.", className="fw-hint"),
    ])


def _rule_condition(r: dict) -> str:
    if r["detector"] == "threshold":
        return f"{r.get('metric')} {r.get('op')} {fmt_num(r.get('value'))}"
    return ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items()) or "defaults"


def rules_table(rules: list[dict]) -> html.Table:
    rows = [html.Tr([
        html.Td(html.B(r["name"])),
        html.Td(r["detector"]),
        html.Td(_rule_condition(r), className="fw-wrap"),
        html.Td(f"{r['for_steps']} / {r['keep_firing_steps']}", className="num"),
        html.Td(badge(r["severity"])),
        html.Td(r["source"] + (f" (over {r['overrides']})" if r.get("overrides") else "")),
        html.Td(badge("enabled" if r["enabled"] else "disabled")),
        html.Td([
            _button("Disable" if r["enabled"] else "Enable",
                    {"type": "rule-toggle", "name": r["name"], "enable": not r["enabled"]}),
            _button("Edit", {"type": "rule-edit", "name": r["name"]}),
            _button("Delete", {"type": "rule-delete", "name": r["name"]}, "danger") if r["source"] == "api" else None,
        ], className="fw-actions"),
    ], id={"type": "rule-row", "name": r["name"]}) for r in rules]
    return _table(["Rule", "Detector", "Fires when", "For / keep", "Severity", "Source", "", ""], rows,
                  "rules-table-el")


def _field(label: str, component) -> html.Div:
    return html.Div([html.Label(label, htmlFor=component.id), component], className="fw-field")


def rule_form() -> html.Div:
    return html.Div([
        html.H3("Add or change a rule", className="fw-subsection"),
        html.P("A rule of the same name as a built-in or file rule replaces it for this project. Threshold "
               "rules watch one scalar; the built-in detectors take their settings as JSON params.",
               className="fw-hint"),
        html.Div(className="fw-form", children=[
            _field("Name", dcc.Input(id="rule-name", type="text", placeholder="kl_high")),
            _field("Detector", dcc.Dropdown(id="rule-detector", options=DETECTORS, value="threshold",
                                            clearable=False)),
            _field("Metric", dcc.Input(id="rule-metric", type="text", placeholder="kl")),
            _field("Operator", dcc.Dropdown(id="rule-op", options=[">", ">=", "<", "<=", "==", "!="], value=">",
                                            clearable=False)),
            _field("Value", dcc.Input(id="rule-value", type="number", placeholder="0.5")),
            _field("Params (JSON)", dcc.Input(id="rule-params", type="text", placeholder='{"bound": 0.6}')),
            _field("For steps", dcc.Input(id="rule-for", type="number", min=1, value=1)),
            _field("Keep firing steps", dcc.Input(id="rule-keep", type="number", min=0, value=0)),
            _field("Severity", dcc.Dropdown(id="rule-severity", options=["warning", "critical"], value="warning",
                                            clearable=False)),
            html.Button("Save rule", id="rule-save", n_clicks=0, className="fw-button primary"),
        ]),
    ])


def channels_table(channels: list[dict]) -> html.Div:
    if not channels:
        return empty_state("No channels yet.", "Alerts are listed here either way; add a Slack incoming "
                           "webhook or a signed webhook below to be told when a run starts to collapse.")
    rows = [html.Tr([
        html.Td(html.B(c["name"])), html.Td(c["kind"]), html.Td(c["url"], className="fw-wrap"),
        html.Td(badge("enabled" if c["enabled"] else "disabled")),
        html.Td([
            _button("Send test", {"type": "channel-test", "id": c["id"]}),
            _button("Disable" if c["enabled"] else "Enable",
                    {"type": "channel-toggle", "id": c["id"], "enable": not c["enabled"]}),
            _button("Delete", {"type": "channel-delete", "id": c["id"]}, "danger"),
        ], className="fw-actions"),
    ], id={"type": "channel-row", "id": c["id"]}) for c in channels]
    return _table(["Channel", "Kind", "Target (secrets masked)", "", ""], rows, "channels-table-el")


def channel_form() -> html.Div:
    return html.Div([
        html.H3("Add a channel", className="fw-subsection"),
        html.Div(className="fw-form", children=[
            _field("Name", dcc.Input(id="channel-name", type="text", placeholder="rl-team")),
            _field("Kind", dcc.Dropdown(id="channel-kind", options=["slack", "webhook"], value="slack",
                                        clearable=False)),
            _field("URL", dcc.Input(id="channel-url", type="text", placeholder="https://hooks.slack.com/services/...")),
            _field("Signing secret (webhook)", dcc.Input(id="channel-secret", type="password",
                                                         placeholder="whsec_...")),
            html.Button("Add channel", id="channel-save", n_clicks=0, className="fw-button primary"),
        ]),
    ])


def silences_table(silences: list[dict]) -> html.Div:
    if not silences:
        return empty_state("No silences.", "A silence mutes the messages of matching alerts for a while; "
                           "the alerts themselves are still listed.")
    rows = [html.Tr([
        html.Td(", ".join(f"{m['name']}{m['op']}{m['value']}" for m in s["matchers"]), className="fw-wrap"),
        html.Td(fmt_time(s["starts_at"])), html.Td(fmt_time(s["ends_at"])),
        html.Td(s.get("comment") or "–", className="fw-wrap"), html.Td(s.get("created_by") or "–"),
        html.Td(badge("active" if s["active"] else "ended")),
        html.Td(_button("Expire now", {"type": "silence-expire", "id": s["id"]}) if s["active"] else None),
    ], id={"type": "silence-row", "id": s["id"]}) for s in silences]
    return _table(["Matchers", "From", "Until", "Comment", "By", "", ""], rows, "silences-table-el")


def silence_form() -> html.Div:
    return html.Div([
        html.H3("Add a silence", className="fw-subsection"),
        html.Div(className="fw-form", children=[
            _field("Matchers", dcc.Input(id="silence-matchers", type="text",
                                         placeholder="rule=heavy_tails, run~ablation-*")),
            _field("Hours", dcc.Input(id="silence-hours", type="number", min=0.01, value=2)),
            _field("Comment", dcc.Input(id="silence-comment", type="text", placeholder="known: tiny groups")),
            _field("By", dcc.Input(id="silence-by", type="text", placeholder="your name")),
            html.Button("Add silence", id="silence-save", n_clicks=0, className="fw-button primary"),
        ]),
    ])
