"""/api/v1/projects: the projects the caller may read."""

from __future__ import annotations

from fastapi import APIRouter

from fadewatch.server.deps import DatabaseDep, PrincipalDep
from fadewatch.server.schemas import ProjectList
from fadewatch.server.store import runs

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("", response_model=ProjectList)
def list_projects(db: DatabaseDep, who: PrincipalDep) -> ProjectList:
    """Projects with their run counts, most recently active first (a token sees its own)."""
    with db.transaction() as session:
        return ProjectList(projects=runs.list_projects(session, who))
