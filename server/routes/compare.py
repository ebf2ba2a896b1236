"""/api/v1/compare: several runs and their series in one request (the dashboard's compare page).

One request instead of two per run: the page of 16 runs asked 32 times before. Each run is
read with the same store functions as GET /runs/{id} and GET /runs/{id}/series; runs that
do not exist or that the caller may not read are left out, so a stale link still draws the
others.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from fadewatch.protocol.limits import MAX_KEYS_CHARS, MAX_KEYS_PER_REQUEST, MAX_STEP
from fadewatch.server.deps import DatabaseDep, PrincipalDep, SettingsDep
from fadewatch.server.routes.steps import metric_names
from fadewatch.server.read_schemas import SeriesOut
from fadewatch.server.schemas import RunOut
from fadewatch.server.store import reads, runs

router = APIRouter(prefix="/compare", tags=["steps"])

MAX_RUNS = 32


class CompareOut(BaseModel):
    runs: list[RunOut] = Field(description="the runs found, in the order asked")
    series: list[SeriesOut] = Field(description="each found run's series, in the same order")


def _ints(raw: str, what: str, upper: int, lower: int = 0) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise HTTPException(422, f"{what}: comma-separated integers, e.g. {what}=3,7") from None
    if any(v < lower or v > upper for v in values):
        raise HTTPException(422, f"{what}: each between {lower} and {upper}")
    return values


@router.get("", response_model=CompareOut)
def compare(
    db: DatabaseDep,
    who: PrincipalDep,
    settings: SettingsDep,
    runs_: str = Query(alias="runs", max_length=400, description="comma-separated run ids, at most 32"),
    keys: str = Query(default="", max_length=MAX_KEYS_CHARS, description="comma-separated scalar names"),
    max_points: int | None = Query(default=None, ge=1),
    after: str | None = Query(default=None, max_length=800,
                              description="per run, in the same order: only steps after this one (-1: all)"),
) -> CompareOut:
    """The runs, and for each its series of `keys` (none when `keys` is empty)."""
    ids = list(dict.fromkeys(_ints(runs_, "runs", 2**31 - 1)))
    if not ids or len(ids) > MAX_RUNS:
        raise HTTPException(422, f"runs: between 1 and {MAX_RUNS} run ids")
    names = metric_names(keys, "keys", MAX_KEYS_PER_REQUEST, "keys=loss,entropy/mean", required=False)
    since = _ints(after, "after", MAX_STEP, lower=-1) if after else []
    if since and len(since) != len(ids):
        raise HTTPException(422, "after: one step per run, in the order of runs")
    points = min(max_points or settings.default_max_points, settings.max_points_limit)
    series = []
    with db.transaction() as session:
        found = runs.get_runs(session, ids, who)
        after = dict(zip(ids, since))
        for run in found if names else ():
            min_step = after[run.id] + 1 if after.get(run.id, -1) >= 0 else None
            series.append(reads.series(session, run.id, names, who, points, min_step, None))
    return CompareOut(runs=found, series=series)
