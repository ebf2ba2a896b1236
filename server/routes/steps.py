"""/api/v1/runs/{id}/steps, /series and /histograms."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from fadewatch.protocol.limits import (MAX_HISTOGRAM_NAMES_CHARS, MAX_HISTOGRAMS_PER_READ, MAX_KEYS_CHARS,
                                       MAX_KEYS_PER_REQUEST, MAX_NAME_LENGTH)
from fadewatch.server.deps import DatabaseDep, IngestDep, PrincipalDep, RunId, SettingsDep, StepBound
from fadewatch.server.limits import check_batch, parse_batch
from fadewatch.server.read_schemas import HistogramMatrix, SeriesOut
from fadewatch.server.schemas import IngestResult, MetricName
from fadewatch.server.store import histogram_reads, reads

router = APIRouter(prefix="/runs/{run_id}", tags=["steps"])
_METRIC_NAME = TypeAdapter(MetricName)


BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StepBatch"}}},
    }
}


@router.post(
    "/steps",
    response_model=IngestResult,
    openapi_extra=BATCH_BODY,
    responses={413: {"description": "batch over a size limit"}, 422: {"description": "invalid batch"},
               503: {"description": "database unreachable or read-only; nothing stored, retry after Retry-After"},
               507: {"description": "database full; nothing stored, retry after Retry-After"}},
)
async def ingest_steps(
    run_id: RunId,
    request: Request,
    ingest: IngestDep,
    who: PrincipalDep,
    settings: SettingsDep,
) -> IngestResult:
    """Store a batch of step records in one transaction; already stored steps are skipped.

    The body is a StepBatch (gzip accepted). Parsing and validation happen in one pass
    from the raw bytes, off the event loop.
    """
    body = await request.body()

    def work() -> IngestResult:
        batch = parse_batch(body, request.headers.get("content-type"))
        check_batch(batch, settings)
        return ingest.ingest(run_id, batch.records, who)

    return await run_in_threadpool(work)


def metric_names(raw: str, what: str, limit: int, example: str, required: bool = True) -> list[str]:
    """The comma-separated metric names of a read's query, each checked as a stored name."""
    keys = list(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    if not keys and required:
        raise HTTPException(422, f"{what} must name at least one metric, e.g. {example}")
    if len(keys) > limit:
        raise HTTPException(422, f"at most {limit} names in {what} per request")
    if any(len(k) > MAX_NAME_LENGTH for k in keys):
        raise HTTPException(422, f"a name in {what} is longer than {MAX_NAME_LENGTH} characters")
    # Only metric names are ever stored, and a key becomes an SQLite JSON path, where a NUL
    # character is a syntax error (OperationalError, which reads as the database being away).
    for key in keys:
        try:
            _METRIC_NAME.validate_python(key)
        except ValidationError as exc:
            raise HTTPException(422, f"{key!r} in {what} is not a metric name: {exc.errors()[0]['msg']}") from None
    return keys


def _keys(raw: str) -> list[str]:
    return metric_names(raw, "keys", limit=MAX_KEYS_PER_REQUEST, example="keys=loss,entropy/mean")


@router.get("/series", response_model=SeriesOut)
def read_series(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    settings: SettingsDep,
    keys: str = Query(description="comma-separated scalar names", max_length=MAX_KEYS_CHARS),
    max_points: int | None = Query(default=None, ge=1),
    min_step: StepBound = None,
    max_step: StepBound = None,
) -> SeriesOut:
    """Scalars over steps; past max_points, each bucket gives its last value, min and max."""
    points = min(max_points or settings.default_max_points, settings.max_points_limit)
    with db.transaction() as session:
        return reads.series(session, run_id, _keys(keys), who, points, min_step, max_step)


@router.get("/histograms", response_model=HistogramMatrix)
def read_histograms(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    settings: SettingsDep,
    name: str = Query(min_length=1, max_length=MAX_HISTOGRAM_NAMES_CHARS,
                      description="a histogram name; several, comma-separated, are added step by step"),
    max_steps: int | None = Query(default=None, ge=1),
    min_step: StepBound = None,
    max_step: StepBound = None,
) -> HistogramMatrix:
    """A histogram over steps as a matrix; neighbouring steps merge by adding counts."""
    columns = min(max_steps or 200, settings.max_points_limit)
    names = metric_names(name, "name", limit=MAX_HISTOGRAMS_PER_READ, example="name=difficulty/mass_pos,difficulty/mass_neg")
    with db.transaction() as session:
        return histogram_reads.histogram_matrix(session, run_id, names, who, columns, min_step, max_step)
