"""The forecast a run's charts draw, read from the very state its alert rule evaluates.

The dashboard computes no forecast of its own: it asks for this one, so its dashed line and
the early-warning alert always agree (same rule, same project overrides, same memory).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from fadewatch.server.alerts.evaluation.detectors import DETECTORS
from fadewatch.server.alerts.evaluation.engine import AlertContext, project_rules
from fadewatch.server.alerts.schemas import ForecastOut
from fadewatch.server.models import Run
from fadewatch.server.store import alerts as store

__all__ = ["run_forecast"]


def run_forecast(session: Session, ctx: AlertContext, run: Run) -> ForecastOut:
    """The forecast of the first enabled rule of the run's project whose detector has one."""
    for rule in project_rules(session, run.project_id, ctx):
        make = DETECTORS[rule.detector].forecast
        if make is None:
            continue
        metric = getattr(rule.params, "entropy_metric", None) or getattr(rule.params, "metric", None)
        found = store.track_memory(session, run.id, rule.fingerprint(run.id))
        f = make(rule.params, found[0]) if found else None
        if f is None:
            return ForecastOut(run_id=run.id, rule=rule.name, metric=metric, step=None, value=None, baseline=None,
                               collapse_level=None, fitted=None, slope=None, projected_step=None, horizon=None,
                               signals=[], firing=False)
        return ForecastOut(
            run_id=run.id, rule=rule.name, metric=metric, step=f["step"], value=f["entropy"], baseline=f["baseline"],
            collapse_level=f["collapse_level"], fitted=f["entropy_fit"], slope=f["slope"],
            projected_step=f["projected_step"], horizon=f["horizon"], signals=f["signals"],
            firing=found[1] == "firing",
        )
    return ForecastOut(run_id=run.id, rule=None, metric=None, step=None, value=None, baseline=None,
                       collapse_level=None, fitted=None, slope=None, projected_step=None, horizon=None,
                       signals=[], firing=False)
