"""Projects and runs."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.models import Project, Run, utcnow
from fadewatch.server.schemas import AlertBrief, ProjectOut, RunCreate, RunOut
from fadewatch.server.store.alert_summaries import firing_counts, latest_alerts
from fadewatch.server.store.errors import Forbidden, NotFound

__all__ = ["get_or_create_project", "create_or_resume", "get_run", "get_runs", "list_runs", "list_projects", "set_status", "to_out",
           "find_project", "load_run"]


def find_project(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def get_or_create_project(session: Session, name: str) -> Project:
    project = find_project(session, name)
    if project is not None:
        return project
    # Another request may create the same project concurrently: retry the read on conflict.
    try:
        with session.begin_nested():
            project = Project(name=name, created_at=utcnow())
            session.add(project)
        return project
    except IntegrityError:
        project = find_project(session, name)
        assert project is not None
        return project


def create_or_resume(session: Session, body: RunCreate, who: Principal) -> tuple[RunOut, bool]:
    """Return the run named body.name in body.project, creating it if needed."""
    who.require_project(body.project, write=True)
    project = get_or_create_project(session, body.project)
    run = _find_run(session, project.id, body.name)
    created = False
    if run is None:
        try:
            with session.begin_nested():
                now = utcnow()
                run = Run(
                    project_id=project.id,
                    name=body.name,
                    status="running",
                    config=body.config,
                    created_at=now,
                    updated_at=now,
                    step_count=0,
                )
                session.add(run)
            created = True
        except IntegrityError:
            run = _find_run(session, project.id, body.name)
            assert run is not None
    if not created:
        run.status, run.error = "running", None
        if body.config is not None:
            run.config = body.config
        run.updated_at = utcnow()
    session.flush()
    return to_out(run, project.name), created


def _find_run(session: Session, project_id: int, name: str) -> Run | None:
    return session.scalar(select(Run).where(Run.project_id == project_id, Run.name == name))


def load_run(session: Session, run_id: int, who: Principal, *, write: bool = False, lock: bool = False) -> Run:
    """The run, if it exists and the caller may see it (404 otherwise, so ids do not leak).

    ``lock``: its row is locked (FOR UPDATE on PostgreSQL) until the transaction ends."""
    run = session.get(Run, run_id, with_for_update=lock or None)
    if run is None or not who.can_read(run.project_id):
        raise NotFound(f"run {run_id} not found")
    if write and not who.can_write(run.project_id):
        raise Forbidden("a read token cannot change runs")
    return run


def get_run(session: Session, run_id: int, who: Principal) -> RunOut:
    run = load_run(session, run_id, who)
    return _with_alerts(session, run)


def _with_alerts(session: Session, run: Run) -> RunOut:
    firing = firing_counts()
    n = session.scalar(select(func.coalesce(func.max(firing.c.n), 0)).where(firing.c.run_id == run.id))
    return to_out(run, _project_name(session, run.project_id), n or 0, latest_alerts(session, [run.id]).get(run.id))


_SORT_COLUMNS = {
    "updated": Run.updated_at,
    "created": Run.created_at,
    "name": Run.name,
    "last_step": Run.last_step,
}


def _with_firing(where: list):
    """(the runs matching `where`, each with its project's name and how many of its alerts fire;
    the firing counts' subquery, to sort by)."""
    firing = firing_counts()
    return (select(Run, Project.name, func.coalesce(firing.c.n, 0))
            .join(Project, Project.id == Run.project_id)
            .outerjoin(firing, firing.c.run_id == Run.id)
            .where(*where)), firing


def list_runs(
    session: Session,
    who: Principal,
    project: str | None = None,
    statuses: list[str] | None = None,
    q: str | None = None,
    sort: str = "updated",
    descending: bool = True,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[RunOut], int]:
    """A page of runs with their alert counts, and how many match in all."""
    if project is not None:
        who.require_project(project, write=False)
    where = []
    if not who.is_open:
        where.append(Run.project_id == who.project_id)
    if project is not None:
        where.append(Project.name == project)
    if statuses:
        where.append(Run.status.in_(statuses))
    if q:
        needle = q.lower()
        where.append(or_(func.lower(Run.name).contains(needle, autoescape=True),
                         func.lower(Project.name).contains(needle, autoescape=True)))
    base, firing = _with_firing(where)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    key = func.coalesce(firing.c.n, 0) if sort == "alerts_firing" else _SORT_COLUMNS[sort]
    key = key.desc().nulls_last() if descending else key.asc().nulls_last()
    rows = session.execute(base.order_by(key, Run.id.desc() if descending else Run.id.asc())
                           .limit(limit).offset(offset)).all()
    latest = latest_alerts(session, [run.id for run, _, _ in rows])
    return [to_out(run, name, n, latest.get(run.id)) for run, name, n in rows], total


def get_runs(session: Session, run_ids: list[int], who: Principal) -> list[RunOut]:
    """Several runs with their alert counts, in the order asked, in two queries; runs that do not
    exist or that the caller may not read are left out."""
    where = [Run.id.in_(run_ids)] + ([] if who.is_open else [Run.project_id == who.project_id])
    rows = session.execute(_with_firing(where)[0]).all()
    by_id = {run.id: (run, name, n) for run, name, n in rows}
    latest = latest_alerts(session, list(by_id))
    return [to_out(*by_id[i], latest.get(i)) for i in run_ids if i in by_id]


def list_projects(session: Session, who: Principal) -> list[ProjectOut]:
    """The projects the caller may read, with their run counts, most recently active first."""
    query = (select(Project.name, func.count(Run.id), func.count(Run.id).filter(Run.status == "running"),
                    func.max(Run.updated_at))
             .outerjoin(Run, Run.project_id == Project.id).group_by(Project.id, Project.name))
    if not who.is_open:
        query = query.where(Project.id == who.project_id)
    rows = session.execute(query).all()
    out = [ProjectOut(name=name, runs=n, running=running, last_activity=last) for name, n, running, last in rows]
    return sorted(out, key=lambda p: (p.last_activity is None, -(p.last_activity.timestamp() if p.last_activity
                                                                  else 0), p.name))


def set_status(session: Session, run_id: int, status: str, who: Principal, error: str | None = None) -> RunOut:
    run = load_run(session, run_id, who, write=True)
    run.status = status
    run.error = error if status in ("failed", "crashed") else None
    run.updated_at = utcnow()
    session.flush()
    return _with_alerts(session, run)


def _project_name(session: Session, project_id: int) -> str:
    return session.scalar(select(Project.name).where(Project.id == project_id))


def to_out(run: Run, project_name: str, alerts_firing: int = 0, latest_alert: AlertBrief | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        project=project_name,
        name=run.name,
        status=run.status,
        config=run.config,
        created_at=run.created_at,
        updated_at=run.updated_at,
        last_step=run.last_step,
        last_time=run.last_time,
        error=run.error,
        step_count=run.step_count or 0,
        summary=run.summary,
        alerts_firing=alerts_firing,
        latest_alert=latest_alert,
    )
