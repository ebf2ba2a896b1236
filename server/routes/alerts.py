"""/api/v1/alerts: alerts of the caller's projects, and one alert with its events and delivery log."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from fadewatch.server.alerts.schemas import AlertDetail, AlertList, AlertStateName
from fadewatch.server.deps import MAX_ID, AlertContextDep, DatabaseDep, ObjectId, Offset, PrincipalDep
from fadewatch.server.store import alerts

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=AlertList)
def list_alerts(
    db: DatabaseDep,
    who: PrincipalDep,
    ctx: AlertContextDep,
    project: str | None = Query(default=None, min_length=1, max_length=200),
    run_id: int | None = Query(default=None, ge=1, le=MAX_ID),
    state: list[AlertStateName] | None = Query(
        default=None, description="repeat to ask for several; default pending, firing and resolved"),
    severity: Literal["warning", "critical"] | None = None,
    rule: str | None = Query(default=None, min_length=1, max_length=100),
    limit: int = Query(default=200, ge=1, le=5000),
    offset: Offset = 0,
) -> AlertList:
    """Alerts, latest transition first. An alert is one (run, rule, labels) fingerprint."""
    with db.transaction() as session:
        page, total = alerts.list_alerts(
            session, who, ctx.public_url, project=project, run_id=run_id, states=state,
            severity=severity, rule=rule, limit=limit, offset=offset,
        )
    return AlertList(alerts=page, total=total)


@router.get("/{alert_id}", response_model=AlertDetail, responses={404: {"description": "no such alert"}})
def get_alert(
    alert_id: ObjectId,
    db: DatabaseDep,
    who: PrincipalDep,
    ctx: AlertContextDep,
    max_events: int = Query(default=200, ge=1, le=5000, description="the newest events kept"),
) -> AlertDetail:
    """One alert with its events (firing, repeat, resolved) and each notification's delivery log."""
    with db.transaction() as session:
        return alerts.get_alert(session, alert_id, who, ctx.public_url, max_events)
