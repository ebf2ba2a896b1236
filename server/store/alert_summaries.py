"""What the runs list shows of each run's alerts: how many fire now, and the newest one."""

from __future__ import annotations

from sqlalchemy import Subquery, func, select
from sqlalchemy.orm import Session

from fadewatch.server.alerts.models import AlertState
from fadewatch.server.schemas import AlertBrief

__all__ = ["firing_counts", "latest_alerts", "changed_at"]

# Latest transition first (fired or resolved; a pending episode by its last evaluation):
# updated_at alone moves on every evaluated step of an active run.
changed_at = func.coalesce(AlertState.resolved_at, AlertState.fired_at, AlertState.updated_at)


def firing_counts() -> Subquery:
    """(run_id, n): alerts firing per run, for joining onto runs."""
    return (select(AlertState.run_id, func.count().label("n"))
            .where(AlertState.state == "firing").group_by(AlertState.run_id).subquery())


def latest_alerts(session: Session, run_ids: list[int]) -> dict[int, AlertBrief]:
    """Each run's most recently changed alert (pending, firing or resolved), in one query."""
    if not run_ids:
        return {}
    rank = func.row_number().over(partition_by=AlertState.run_id,
                                  order_by=(changed_at.desc(), AlertState.id.desc())).label("rank")
    ranked = (select(AlertState.run_id, AlertState.id, AlertState.rule, AlertState.severity, AlertState.state,
                     AlertState.fired_step, AlertState.pending_step, AlertState.summary, rank)
              .where(AlertState.run_id.in_(run_ids), AlertState.state.in_(("pending", "firing", "resolved")))
              .subquery())
    out = {}
    for row in session.execute(select(ranked).where(ranked.c.rank == 1)):
        step = row.fired_step if row.state != "pending" and row.fired_step is not None else row.pending_step
        out[row.run_id] = AlertBrief(id=row.id, rule=row.rule, severity=row.severity, state=row.state, step=step,
                                     summary=row.summary)
    return out
