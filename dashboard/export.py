"""Downloads: any series as CSV at full resolution, and the static report of a run."""

from __future__ import annotations

import csv
import io
import re

import flask

from fadewatch.dashboard.context import client
from fadewatch.errors import NotFoundError, ServerError, Unauthorized
from fadewatch.protocol.limits import MAX_POINTS

__all__ = ["register_exports", "csv_rows"]

_SAFE_CELL = re.compile(r"^[=+\-@\t\r]")


def _cell(name: str) -> str:
    # A header starting with = + - @ would be a formula in a spreadsheet.
    return "'" + name if _SAFE_CELL.match(name) else name


def csv_rows(api, run_id: int, keys: list[str], last_step: int | None):
    """Header, then one row per step holding any of `keys`, read in windows the API returns whole."""
    yield ["step", *(_cell(k) for k in keys)]
    if last_step is None:
        return
    start = 0
    while start <= last_step:
        end = start + MAX_POINTS - 1
        data = api.series(run_id, keys, max_points=MAX_POINTS, min_step=start, max_step=end)["series"]
        rows: dict[int, list] = {}
        for j, key in enumerate(keys):
            p = data.get(key) or {"steps": [], "values": []}
            for s, v in zip(p["steps"], p["values"]):
                rows.setdefault(s, [None] * len(keys))[j] = v
        for s in sorted(rows):
            yield [s, *("" if v is None else repr(float(v)) for v in rows[s])]
        start = end + 1


def _error(exc: ServerError):
    status = 401 if isinstance(exc, Unauthorized) else 404 if isinstance(exc, NotFoundError) else 502
    return flask.Response(str(exc), status=status, mimetype="text/plain")


def register_exports(server: flask.Flask, prefix: str) -> None:
    @server.route(f"{prefix}export/runs/<int:run_id>.csv")
    def export_csv(run_id: int):
        api = client()
        try:
            run = api.run(run_id)
            raw = flask.request.args.get("keys")
            keys = [k for k in (raw or "").split(",") if k] or sorted(run.get("summary") or {})
            buf = io.StringIO()
            writer = csv.writer(buf)
            for row in csv_rows(api, run_id, keys, run.get("last_step")):
                writer.writerow(row)
        except ServerError as exc:
            return _error(exc)
        name = f"run-{run_id}.csv" if not raw else f"run-{run_id}-{len(keys)}-series.csv"
        return flask.Response(buf.getvalue(), mimetype="text/csv",
                              headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @server.route(f"{prefix}export/runs/<int:run_id>/report.html")
    def export_report(run_id: int):
        from fadewatch.dashboard.report import build_report

        try:
            text = build_report(client(), run_id)
        except ServerError as exc:
            return _error(exc)
        return flask.Response(text, mimetype="text/html", headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}.html"',
            # The report carries its own inline scripts; as a download it never runs here.
            "Content-Security-Policy": "sandbox; default-src 'none'",
        })
