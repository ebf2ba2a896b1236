"""A project's own alert rules (set through the API), stored as validated specs."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fadewatch.server.alerts.models import AlertRule
from fadewatch.server.alerts.evaluation.rules import RuleSpec, spec_hash

__all__ = ["api_rules", "api_rule", "put_rule", "delete_rule"]

log = logging.getLogger("fadewatch.server.alerts")


def _spec(row: AlertRule) -> RuleSpec | None:
    try:
        return RuleSpec.model_validate(row.spec)
    except ValueError:
        log.warning("stored rule %r of project %s no longer validates; it is skipped", row.name, row.project_id)
        return None


def api_rules(session: Session, project_id: int) -> list[RuleSpec]:
    rows = session.scalars(select(AlertRule).where(AlertRule.project_id == project_id).order_by(AlertRule.id))
    return [s for s in (_spec(r) for r in rows) if s is not None]


def api_rule(session: Session, project_id: int, name: str) -> RuleSpec | None:
    row = session.scalar(select(AlertRule).where(AlertRule.project_id == project_id, AlertRule.name == name))
    return None if row is None else _spec(row)


def put_rule(session: Session, project_id: int, spec: RuleSpec, now: float) -> bool:
    """Create or replace the project's rule `spec.name`; True when it is new."""
    row = session.scalar(
        select(AlertRule).where(AlertRule.project_id == project_id, AlertRule.name == spec.name).with_for_update()
    )
    doc, digest = spec.model_dump(mode="json"), spec_hash(spec)
    if row is None:
        session.add(AlertRule(project_id=project_id, name=spec.name, spec=doc, spec_hash=digest,
                              created_at=now, updated_at=now))
        session.flush()
        return True
    row.spec, row.spec_hash, row.updated_at = doc, digest, now
    session.flush()
    return False


def delete_rule(session: Session, project_id: int, name: str) -> bool:
    result = session.execute(delete(AlertRule).where(AlertRule.project_id == project_id, AlertRule.name == name))
    return bool(result.rowcount)
