"""Projects and runs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal
from fadewatch.server.models import Project, Run, utcnow
from fadewatch.server.schemas import RunCreate, RunOut
from fadewatch.server.store.errors import Forbidden, NotFound

__all__ = ["get_or_create_project", "create_or_resume", "get_run", "list_runs", "set_status", "to_out", "find_project"]


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


def load_run(session: Session, run_id: int, who: Principal, *, write: bool = False) -> Run:
    """The run, if it exists and the caller may see it (404 otherwise, so ids do not leak)."""
    run = session.get(Run, run_id)
    if run is None or not who.can_read(run.project_id):
        raise NotFound(f"run {run_id} not found")
    if write and not who.can_write(run.project_id):
        raise Forbidden("a read token cannot change runs")
    return run


def get_run(session: Session, run_id: int, who: Principal) -> RunOut:
    run = load_run(session, run_id, who)
    return to_out(run, _project_name(session, run.project_id))


def list_runs(
    session: Session,
    who: Principal,
    project: str | None = None,
    status: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[RunOut]:
    query = select(Run, Project.name).join(Project, Project.id == Run.project_id)
    if project is not None:
        who.require_project(project, write=False)
    if not who.is_open:
        query = query.where(Run.project_id == who.project_id)
    if project is not None:
        query = query.where(Project.name == project)
    if status is not None:
        query = query.where(Run.status == status)
    query = query.order_by(Run.updated_at.desc(), Run.id.desc()).limit(limit).offset(offset)
    return [to_out(run, project_name) for run, project_name in session.execute(query)]


def set_status(session: Session, run_id: int, status: str, who: Principal, error: str | None = None) -> RunOut:
    run = load_run(session, run_id, who, write=True)
    run.status = status
    run.error = error if status in ("failed", "crashed") else None
    run.updated_at = utcnow()
    session.flush()
    return to_out(run, _project_name(session, run.project_id))


def _project_name(session: Session, project_id: int) -> str:
    return session.scalar(select(Project.name).where(Project.id == project_id))


def to_out(run: Run, project_name: str) -> RunOut:
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
    )
