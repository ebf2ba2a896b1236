"""The fadewatch dashboard (Dash + Plotly): reads the server's HTTP API, never the database.

    from fadewatch.dashboard import create_dash_app
    app = create_dash_app("http://127.0.0.1:8700")      # a Dash app; app.server is its Flask app
"""

from __future__ import annotations

__all__ = ["create_dash_app", "build_report", "serve"]


def __getattr__(name: str):
    # Lazy, so the figure builders import without starting Dash.
    if name == "create_dash_app":
        from fadewatch.dashboard.app import create_dash_app

        return create_dash_app
    if name == "build_report":
        from fadewatch.dashboard.report import build_report

        return build_report
    if name == "serve":
        from fadewatch.dashboard.serve import serve

        return serve
    raise AttributeError(f"module 'fadewatch.dashboard' has no attribute {name!r}")
