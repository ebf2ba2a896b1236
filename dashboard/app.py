"""The Dash application: the page shell, theme switch, security headers and exports."""

from __future__ import annotations

import threading
from pathlib import Path

import dash
import flask
from dash import Input, Output, State, dcc, html

from fadewatch.dashboard.context import CONFIG_KEY, TOKEN_COOKIE, DashboardConfig, config

__all__ = ["create_dash_app", "security_headers"]

HERE = Path(__file__).parent
# Dash imports page modules and collects their callbacks globally until an app's first
# request; building apps one at a time and warming each at once keeps them apart.
_BUILD_LOCK = threading.Lock()


def security_headers(script_hashes: list[str]) -> dict[str, str]:
    """Headers for every dashboard answer; the script hashes allow Dash's one inline script."""
    csp = "; ".join([
        "default-src 'self'",
        "script-src 'self' " + " ".join(script_hashes),
        # Dash and Plotly style elements inline; heatmaps are drawn into data: images.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


def _shell() -> html.Div:
    from fadewatch.dashboard.context import href

    nav = [("Runs", ""), ("Compare", "compare"), ("Alerts", "alerts")]
    return html.Div(id="fw-root", className="fw theme-dark", children=[
        dcc.Store(id="fw-theme", storage_type="local"),
        html.Header(className="fw-header", children=[
            dcc.Link("fadewatch", href=href(""), className="fw-brand"),
            html.Nav([dcc.Link(label, href=href(path), className="fw-nav-link") for label, path in nav]),
            html.Button("☾ / ☀", id="fw-theme-toggle", className="fw-button fw-theme-toggle",
                        title="Switch between the dark and the light theme", n_clicks=0),
        ]),
        html.Main(dash.page_container, className="fw-main"),
    ])


def _register_shell_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output("fw-token-msg", "children"),
        Input("fw-token-save", "n_clicks"),
        State("fw-token-input", "value"),
        prevent_initial_call=True,
    )
    def save_token(_clicks, token):
        token = (token or "").strip()
        if not token:
            return html.P("Paste a token first.", className="fw-error")
        secure = flask.request.scheme == "https"
        # HttpOnly: page scripts never see it; the dashboard's server reads it per request.
        dash.ctx.response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=secure,
                                     max_age=30 * 86400, path=config().prefix)
        return html.P(["Token saved. ", html.A("Reload the page", href=flask.request.headers.get("Referer", ""))])

    @app.callback(
        Output("fw-theme", "data"),
        Output("fw-root", "className"),
        Input("fw-theme-toggle", "n_clicks"),
        State("fw-theme", "data"),
    )
    def switch_theme(n_clicks, stored):
        theme = stored if stored in ("dark", "light") else "dark"
        if dash.ctx.triggered_id == "fw-theme-toggle" and n_clicks:
            theme = "light" if theme == "dark" else "dark"
        return theme, f"fw theme-{theme}"


def create_dash_app(api_url: str | None = None, token: str | None = None,
                    requests_pathname_prefix: str = "/", refresh_seconds: float = 2.0) -> dash.Dash:
    """The dashboard over the read API at `api_url` (None: the server the mount runs in)."""
    prefix = "/" + requests_pathname_prefix.strip("/") + "/" if requests_pathname_prefix.strip("/") else "/"
    with _BUILD_LOCK:
        app = dash.Dash(
            "fadewatch.dashboard",
            use_pages=True,
            pages_folder=str(HERE / "pages"),
            assets_folder=str(HERE / "assets"),
            requests_pathname_prefix=prefix,
            routes_pathname_prefix=prefix,
            title="fadewatch",
            update_title=None,
            suppress_callback_exceptions=True,
            serve_locally=True,
        )
        app.server.config[CONFIG_KEY] = DashboardConfig(
            api_url=api_url.rstrip("/") if api_url else None, token=token, prefix=prefix,
            refresh_ms=max(250, int(refresh_seconds * 1000)),
        )
        with app.server.test_request_context():
            app.layout = _shell()
        _register_shell_callbacks(app)
        from fadewatch.dashboard.export import register_exports

        register_exports(app.server, prefix)
        headers: dict[str, str] = {}

        @app.server.after_request
        def _secure(response):
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response

        # The first request moves the globally collected page callbacks into this app.
        app.server.test_client().get(prefix + "_dash-layout")
        headers.update(security_headers(list(app.csp_hashes())))
    return app
