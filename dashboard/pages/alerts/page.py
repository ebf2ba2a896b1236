"""Alerts: every alert with its state, events and delivery log; a project's rules, channels, silences."""

from __future__ import annotations

import dash
from dash import ALL, Input, Output, callback, ctx, dcc, html, no_update

from fadewatch.dashboard.pages.alerts import actions, alerting_api
from fadewatch.dashboard.pages.alerts.views import (
    alert_detail,
    alerts_table,
    channel_form,
    channels_table,
    rule_form,
    rules_table,
    silence_form,
    silences_table,
)
from fadewatch.dashboard.context import client, config
from fadewatch.dashboard.ui import empty_state, error_state
from fadewatch.errors import ServerError

dash.register_page(__name__, path="/alerts", name="Alerts", title="fadewatch · alerts", order=2)

STATES = ["firing", "pending", "resolved"]
TABS = ("alerts", "rules", "channels", "silences")
MAX_LISTED = 200


def _tab(label: str, value: str, children) -> dcc.Tab:
    return dcc.Tab(label=label, value=value, children=children, className="fw-tab", width="auto",
                   selected_className="fw-tab selected")


def layout(project: str | None = None, tab: str | None = None, alert: str | None = None, **_query):
    try:
        projects = sorted({r["project"] for r in client().runs(limit=5000)})
    except ServerError as exc:
        return error_state(exc)
    return html.Div([
        html.H1("Alerts", className="fw-title"),
        html.P("Alerts are raised by the server as steps arrive; here you see each one's state, its events "
               "and whether its messages were delivered, and manage a project's rules, channels and silences.",
               className="fw-hint"),
        html.Div(className="fw-toolbar", children=[
            html.Div([html.Label("Project", htmlFor="alerts-project"),
                      dcc.Dropdown(id="alerts-project", options=projects, placeholder="all projects",
                                   value=project if project in projects else None)], className="fw-field"),
            html.Div([html.Label("State", htmlFor="alerts-state"),
                      dcc.Dropdown(id="alerts-state", options=STATES, multi=True, placeholder="any state")],
                     className="fw-field"),
            html.Div([html.Label("Severity", htmlFor="alerts-severity"),
                      dcc.Dropdown(id="alerts-severity", options=["critical", "warning"], placeholder="any")],
                     className="fw-field"),
        ]),
        html.Div(id="alerts-msg", role="status"),
        dcc.Tabs(id="alerts-tabs", value=tab if tab in TABS else "alerts", className="fw-tabs", children=[
            _tab("Alerts", "alerts", [html.Div(id="alerts-list"), html.Div(id="alerts-detail")]),
            _tab("Rules", "rules", [html.Div(id="alerts-rules"), rule_form()]),
            _tab("Channels", "channels", [html.Div(id="alerts-channels"), channel_form()]),
            _tab("Silences", "silences", [html.Div(id="alerts-silences"), silence_form()]),
        ]),
        dcc.Store(id="alerts-selected", data=int(alert) if alert and alert.isdigit() else None),
        dcc.Store(id="alerts-changed", data=0),
        dcc.Store(id="alerts-rules-data"),
        dcc.Interval(id="alerts-interval", interval=config().refresh_ms * 2, n_intervals=0),
    ])


@callback(
    Output("alerts-list", "children"),
    Input("alerts-interval", "n_intervals"),
    Input("alerts-project", "value"),
    Input("alerts-state", "value"),
    Input("alerts-severity", "value"),
    Input("alerts-changed", "data"),
)
def refresh_list(_n, project, states, severity, _changed):
    try:
        data = client().get("/alerts", project=project, state=states or None, severity=severity, limit=MAX_LISTED)
    except ServerError as exc:
        return error_state(exc)
    return alerts_table(data["alerts"], data.get("total"))


@callback(Output("alerts-selected", "data"), Input({"type": "alerts-open", "id": ALL}, "n_clicks"),
          prevent_initial_call=True)
def open_alert(clicks):
    if not ctx.triggered_id or not any(clicks or ()):
        return no_update
    return ctx.triggered_id["id"]


@callback(Output("alerts-detail", "children"), Input("alerts-selected", "data"),
          Input("alerts-interval", "n_intervals"), Input("alerts-changed", "data"))
def show_detail(alert_id, _n, _changed):
    if alert_id is None:
        return html.P("Pick an alert's Details to see its events and delivery log.", className="fw-hint")
    try:
        return alert_detail(client().alert(alert_id))
    except ServerError as exc:
        return error_state(exc, f"Alert #{alert_id}")


@callback(
    Output("alerts-rules", "children"),
    Output("alerts-channels", "children"),
    Output("alerts-silences", "children"),
    Output("alerts-rules-data", "data"),
    Input("alerts-project", "value"),
    Input("alerts-changed", "data"),
)
def refresh_settings(project, _changed):
    if not project:
        pick = empty_state("Pick a project above.", "Rules, channels and silences belong to a project.")
        return pick, pick, pick, None
    api = client()
    try:
        rules = alerting_api.rules(api, project)
        return (rules_table(rules), channels_table(alerting_api.channels(api, project)),
                silences_table(alerting_api.silences(api, project)), rules)
    except ServerError as exc:
        failed = error_state(exc)
        return failed, failed, failed, None


actions.register()
