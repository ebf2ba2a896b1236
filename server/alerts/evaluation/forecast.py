"""The forecast and the regimes a run's charts draw, read from the very state its alert rules evaluate.

The dashboard computes neither of its own: it asks for these, so its dashed line and band
agree with the early-warning alert, and its regime badge and bands with the sign rule (same
rules, same project overrides, same memory).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from fadewatch.server.alerts.evaluation.detectors import DETECTORS
from fadewatch.server.alerts.evaluation.engine import AlertContext, project_rules
from fadewatch.server.alerts.schemas import ForecastOut, RegimeOut, RegimeSide, RegimeSpan
from fadewatch.server.models import Run
from fadewatch.server.store import alerts as store

__all__ = ["run_forecast", "run_regime"]


def run_forecast(session: Session, ctx: AlertContext, run: Run) -> ForecastOut:
    """The forecast of the first enabled rule of the run's project whose detector has one."""
    empty = dict(step=None, value=None, baseline=None, collapse_level=None, fitted=None, slope=None,
                 projected_step=None, early_step=None, late_step=None, horizon=None, signals=[], firing=False)
    for rule in project_rules(session, run.project_id, ctx):
        make = DETECTORS[rule.detector].forecast
        if make is None:
            continue
        metric = getattr(rule.params, "entropy_metric", None) or getattr(rule.params, "metric", None)
        found = store.track_memory(session, run.id, rule.fingerprint(run.id))
        f = make(rule.params, found[0]) if found else None
        if f is None:
            return ForecastOut(run_id=run.id, rule=rule.name, metric=metric, **empty)
        return ForecastOut(
            run_id=run.id, rule=rule.name, metric=metric, step=f["step"], value=f["entropy"], baseline=f["baseline"],
            collapse_level=f["collapse_level"], fitted=f["entropy_fit"], slope=f["slope"],
            projected_step=f["projected_step"], early_step=f["early_step"], late_step=f["late_step"],
            horizon=f["horizon"], signals=f["signals"], firing=found[1] == "firing",
        )
    return ForecastOut(run_id=run.id, rule=None, metric=None, **empty)


def run_regime(session: Session, ctx: AlertContext, run: Run) -> RegimeOut:
    """The regimes held by the first enabled rule of the run's project whose detector holds them."""
    for rule in project_rules(session, run.project_id, ctx):
        view = DETECTORS[rule.detector].regime
        if view is None:
            continue
        found = store.track_memory(session, run.id, rule.fingerprint(run.id))
        r = view(rule.params, found[0]) if found else None
        if r is None:
            return RegimeOut(run_id=run.id, rule=rule.name, step=found[2] if found else None, sign=None,
                             difficulty=None, consequence=None, note=None, spans=[])
        return RegimeOut(
            run_id=run.id, rule=rule.name, step=found[2],
            sign=RegimeSide(state=r["sign"]["state"], value=r["sign"]["balance"], since_step=r["sign"]["since_step"],
                            reading=r["sign"]["reading"]),
            difficulty=RegimeSide(state=r["difficulty"]["state"], value=r["difficulty"]["solve_rate"],
                                  since_step=r["difficulty"]["since_step"], reading=r["difficulty"]["reading"]),
            consequence=r["consequence"], note=r["note"], spans=[RegimeSpan(**s) for s in r["spans"]],
        )
    return RegimeOut(run_id=run.id, rule=None, step=None, sign=None, difficulty=None, consequence=None, note=None,
                     spans=[])
