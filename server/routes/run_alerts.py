"""/api/v1/runs/{id}/alert-markers, /forecast and /regime: what a run's charts draw of its alerts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from fadewatch.server.alerts.evaluation.forecast import run_forecast, run_regime
from fadewatch.server.alerts.schemas import ForecastOut, MarkerList, RegimeOut
from fadewatch.server.deps import MAX_ID, AlertContextDep, DatabaseDep, PrincipalDep, RunId, StepBound
from fadewatch.server.store import alerts
from fadewatch.server.store.runs import load_run

router = APIRouter(prefix="/runs/{run_id}", tags=["alerts"])

EventKind = Literal["firing", "resolved", "repeat"]


@router.get("/alert-markers", response_model=MarkerList)
def alert_markers(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    kind: list[EventKind] | None = Query(default=None, description="repeat for several; default firing"),
    min_step: StepBound = None,
    after_event: int | None = Query(default=None, ge=0, le=MAX_ID, description="only events newer than this id"),
) -> MarkerList:
    """Every alert transition of the run at once, oldest first: one request for all its charts."""
    with db.transaction() as session:
        load_run(session, run_id, who)
        found = alerts.run_markers(session, run_id, tuple(kind or ("firing",)), min_step, after_event)
    return MarkerList(run_id=run_id, markers=found)


@router.get("/forecast", response_model=ForecastOut)
def forecast(run_id: RunId, db: DatabaseDep, who: PrincipalDep, ctx: AlertContextDep) -> ForecastOut:
    """Where the run's entropy is heading, as its early-warning rule reads it (baseline, collapse
    level, forecast value and slope, the step the forecast meets the level and its interval)."""
    with db.transaction() as session:
        return run_forecast(session, ctx, load_run(session, run_id, who))


@router.get("/regime", response_model=RegimeOut)
def regime(run_id: RunId, db: DatabaseDep, who: PrincipalDep, ctx: AlertContextDep) -> RegimeOut:
    """The run's sign and difficulty regimes as its sign rule holds them (state, since when, reading,
    the consequence that has begun if any), and the spans of each regime over the run."""
    with db.transaction() as session:
        return run_regime(session, ctx, load_run(session, run_id, who))
