"""The alerts page's writes: rules, channels and silences changed through the API.

`register()` is called by the page module each time Dash loads it, so every dashboard app
built in a process gets these callbacks (a plain import would register them only once).
Each action answers with a message and bumps `alerts-changed`, which redraws the tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from dash import ALL, Input, Output, State, callback, ctx, html, no_update

from fadewatch.dashboard.pages.alerts import alerting_api
from fadewatch.dashboard.context import client
from fadewatch.errors import ServerError

__all__ = ["register", "rule_body"]

MSG = Output("alerts-msg", "children", allow_duplicate=True)
CHANGED = Output("alerts-changed", "data", allow_duplicate=True)


def _ok(text: str) -> html.P:
    return html.P(text, className="fw-ok")


def _failed(text: str) -> html.P:
    return html.P(text, className="fw-error")


def _run(project: str | None, changed: int | None, action: Callable[[], str]):
    """Run one write; (message, new change counter)."""
    if not project:
        return _failed("Pick a project first: rules, channels and silences belong to one."), no_update
    try:
        message = action()
    except ServerError as exc:
        if exc.status_code == 403:
            return _failed(f"Not allowed: {exc}. Changing alerting needs a write token of this project."), no_update
        return _failed(f"The server refused: {exc}"), no_update
    except ValueError as exc:
        return _failed(str(exc)), no_update
    return _ok(message), (changed or 0) + 1


def _clicked() -> dict | None:
    """The pattern id of the button clicked, or None (buttons also 'change' when drawn)."""
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return None
    return ctx.triggered_id


def rule_body(detector, metric, op, value, params, for_steps, keep, severity) -> dict:
    """A rule from the form's fields; ValueError says which field to fix."""
    body = {"detector": detector or "threshold", "for_steps": int(for_steps or 1),
            "keep_firing_steps": int(keep or 0), "severity": severity or "warning"}
    if body["detector"] == "threshold":
        if not metric or value is None:
            raise ValueError("A threshold rule needs a metric and a value, e.g. kl > 0.5.")
        body.update(metric=metric.strip(), op=op or ">", value=float(value))
    elif params:
        try:
            body["params"] = json.loads(params)
        except json.JSONDecodeError as exc:
            raise ValueError(f'Params must be a JSON object, e.g. {{"bound": 0.6}}: {exc.msg}') from None
        if not isinstance(body["params"], dict):
            raise ValueError('Params must be a JSON object, e.g. {"bound": 0.6}.')
    return body


def register() -> None:
    @callback(MSG, CHANGED, Input("rule-save", "n_clicks"),
              State("rule-name", "value"), State("rule-detector", "value"), State("rule-metric", "value"),
              State("rule-op", "value"), State("rule-value", "value"), State("rule-params", "value"),
              State("rule-for", "value"), State("rule-keep", "value"), State("rule-severity", "value"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def save_rule(clicks, name, detector, metric, op, value, params, for_steps, keep, severity, project, changed):
        if not clicks:
            return no_update, no_update

        def act():
            if not (name or "").strip():
                raise ValueError("Give the rule a name, e.g. kl_high.")
            alerting_api.put_rule(client(), project, name.strip(),
                              rule_body(detector, metric, op, value, params, for_steps, keep, severity))
            return f"Rule {name.strip()} saved."
        return _run(project, changed, act)

    @callback(MSG, CHANGED, Input({"type": "rule-toggle", "name": ALL, "enable": ALL}, "n_clicks"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def toggle_rule(_clicks, project, changed):
        hit = _clicked()
        if hit is None:
            return no_update, no_update

        def act():
            alerting_api.set_rule_enabled(client(), project, hit["name"], hit["enable"])
            return f"Rule {hit['name']} {'enabled' if hit['enable'] else 'disabled'}."
        return _run(project, changed, act)

    @callback(MSG, CHANGED, Input({"type": "rule-delete", "name": ALL}, "n_clicks"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def delete_rule(_clicks, project, changed):
        hit = _clicked()
        if hit is None:
            return no_update, no_update

        def act():
            alerting_api.delete_rule(client(), project, hit["name"])
            return f"Rule {hit['name']} deleted; a built-in or file rule of that name applies again."
        return _run(project, changed, act)

    @callback(Output("rule-name", "value"), Output("rule-detector", "value"), Output("rule-metric", "value"),
              Output("rule-op", "value"), Output("rule-value", "value"), Output("rule-params", "value"),
              Output("rule-for", "value"), Output("rule-keep", "value"), Output("rule-severity", "value"),
              Input({"type": "rule-edit", "name": ALL}, "n_clicks"), State("alerts-rules-data", "data"),
              prevent_initial_call=True)
    def edit_rule(_clicks, rules):
        hit = _clicked()
        rule = next((r for r in rules or () if hit and r["name"] == hit["name"]), None)
        if rule is None:
            return (no_update,) * 9
        threshold = rule["detector"] == "threshold"
        return (rule["name"], rule["detector"], rule.get("metric"), rule.get("op") or ">", rule.get("value"),
                "" if threshold else json.dumps(rule.get("params") or {}), rule["for_steps"],
                rule["keep_firing_steps"], rule["severity"])

    @callback(MSG, CHANGED, Input("channel-save", "n_clicks"), State("channel-name", "value"),
              State("channel-kind", "value"), State("channel-url", "value"), State("channel-secret", "value"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def save_channel(clicks, name, kind, url, secret, project, changed):
        if not clicks:
            return no_update, no_update

        def act():
            if not (name or "").strip() or not (url or "").strip():
                raise ValueError("A channel needs a name and a URL.")
            body = {"name": name.strip(), "kind": kind, "url": url.strip()}
            if secret:
                body["secret"] = secret.strip()
            alerting_api.create_channel(client(), project, body)
            return f"Channel {name.strip()} added."
        return _run(project, changed, act)

    @callback(MSG, CHANGED, Input({"type": "channel-toggle", "id": ALL, "enable": ALL}, "n_clicks"),
              Input({"type": "channel-delete", "id": ALL}, "n_clicks"),
              Input({"type": "channel-test", "id": ALL}, "n_clicks"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def channel_action(_toggles, _deletes, _tests, project, changed):
        hit = _clicked()
        if hit is None:
            return no_update, no_update

        def act():
            api = client()
            if hit["type"] == "channel-toggle":
                alerting_api.set_channel_enabled(api, project, hit["id"], hit["enable"])
                return f"Channel {'enabled' if hit['enable'] else 'disabled'}."
            if hit["type"] == "channel-delete":
                alerting_api.delete_channel(api, project, hit["id"])
                return "Channel deleted; messages queued for it are dropped."
            r = alerting_api.test_channel(api, project, hit["id"])
            detail = [f"HTTP {r['status_code']}" if r.get("status_code") else "", r.get("error") or ""]
            detail = ", ".join(d for d in detail if d)
            if r["outcome"] != "delivered":
                raise ValueError(f"Test message not delivered ({r['outcome']}): {detail or 'no answer'}")
            return f"Test message delivered ({detail or 'ok'}, {r['duration_ms']:.0f} ms)."
        return _run(project, changed, act)

    @callback(MSG, CHANGED, Input("silence-save", "n_clicks"), State("silence-matchers", "value"),
              State("silence-hours", "value"), State("silence-comment", "value"), State("silence-by", "value"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def save_silence(clicks, matchers, hours, comment, by, project, changed):
        if not clicks:
            return no_update, no_update

        def act():
            if not hours or float(hours) <= 0:
                raise ValueError("Give the silence a duration in hours.")
            body = {"matchers": alerting_api.parse_matchers(matchers or ""), "duration_s": float(hours) * 3600,
                    "comment": comment or None, "created_by": by or None}
            alerting_api.create_silence(client(), project, body)
            return "Silence added."
        return _run(project, changed, act)

    @callback(MSG, CHANGED, Input({"type": "silence-expire", "id": ALL}, "n_clicks"),
              State("alerts-project", "value"), State("alerts-changed", "data"), prevent_initial_call=True)
    def expire_silence(_clicks, project, changed):
        hit = _clicked()
        if hit is None:
            return no_update, no_update

        def act():
            alerting_api.expire_silence(client(), project, hit["id"])
            return "Silence expired."
        return _run(project, changed, act)
