"""/api/v1/runs: create or resume, list, read, change status."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response

from fadewatch.server.deps import DatabaseDep, Offset, PrincipalDep, RunId, SettingsDep
from fadewatch.server.schemas import RunCreate, RunList, RunOut, RunPatch, RunSort, RunStatus
from fadewatch.server.store import reads, runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post(
    "",
    response_model=RunOut,
    status_code=201,
    responses={200: {"model": RunOut, "description": "An existing run, resumed"}},
)
def create_or_resume_run(
    body: RunCreate, response: Response, db: DatabaseDep, who: PrincipalDep, settings: SettingsDep
) -> RunOut:
    """Create the run `name` in `project`, or resume it if it exists (status back to running)."""
    if body.config is not None:
        # Serialising through pydantic turns NaN and Inf (not valid JSON) into null.
        encoded = body.model_dump_json(include={"config"})
        if len(encoded) > settings.max_config_bytes:
            raise HTTPException(413, f"config over the {settings.max_config_bytes} byte limit")
        body = RunCreate.model_validate({**body.model_dump(exclude={"config"}), **json.loads(encoded)})
    with db.transaction() as session:
        run, created = runs.create_or_resume(session, body, who)
    response.status_code = 201 if created else 200
    return run


@router.get("", response_model=RunList)
def list_runs(
    db: DatabaseDep,
    who: PrincipalDep,
    project: str | None = Query(default=None, max_length=200),
    status: list[RunStatus] | None = Query(default=None, description="repeat to ask for several"),
    q: str | None = Query(default=None, max_length=200, description="text in the run's or project's name"),
    sort: RunSort = "updated",
    order: Literal["asc", "desc"] = "desc",
    limit: int = Query(default=500, ge=1, le=5000),
    offset: Offset = 0,
) -> RunList:
    """A page of runs, each with its firing-alert count and newest alert; `total` counts every match."""
    with db.transaction() as session:
        page, total = runs.list_runs(session, who, project, status, q, sort, order == "desc", limit, offset)
    return RunList(runs=page, total=total)


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, db: DatabaseDep, who: PrincipalDep) -> RunOut:
    with db.transaction() as session:
        return runs.get_run(session, run_id, who)


@router.patch("/{run_id}", response_model=RunOut)
def patch_run(run_id: RunId, body: RunPatch, db: DatabaseDep, who: PrincipalDep) -> RunOut:
    with db.transaction() as session:
        return runs.set_status(session, run_id, body.status, who, body.error)


@router.get("/{run_id}/keys", response_model=list[str])
def scalar_keys(run_id: RunId, db: DatabaseDep, who: PrincipalDep) -> list[str]:
    """Names of the scalars logged at the run's newest step."""
    with db.transaction() as session:
        return reads.scalar_keys(session, run_id, who)
