"""/api/v1/runs/{id}/rollouts (whole groups under filters), /rollouts/steps, and /samples."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from fadewatch.protocol.rollouts import Interval, clean_text, parse_interval
from fadewatch.server.deps import DatabaseDep, PrincipalDep, RunId, StepBound
from fadewatch.server.rollout_schemas import INT32, RolloutPage, RolloutSteps, Sign
from fadewatch.server.read_schemas import SampleList
from fadewatch.server.store import rollout_reads
from fadewatch.server.store.rollout_reads import BadCursor, RolloutFilter

router = APIRouter(prefix="/runs/{run_id}", tags=["rollouts"])

Finite = Annotated[float | None, Query(allow_inf_nan=False)]
Length = Annotated[int | None, Query(ge=0, le=INT32, description="tokens")]
INTERVAL_HELP = "a value or an interval such as (0.2,0.3], [0,0.5) or 1"


def _interval(name: str, value: str | None) -> Interval | None:
    if value is None:
        return None
    try:
        return parse_interval(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


@router.get("/rollouts", response_model=RolloutPage)
def read_rollouts(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    step: StepBound = None,
    min_step: StepBound = None,
    max_step: StepBound = None,
    sign: Sign | None = Query(default=None, description="rollouts whose advantage is positive, negative or zero"),
    difficulty: str | None = Query(default=None, max_length=100,
                                   description="groups whose solve rate lies in " + INTERVAL_HELP),
    advantage: str | None = Query(default=None, max_length=100,
                                  description="rollouts whose advantage lies in " + INTERVAL_HELP),
    group: str | None = Query(default=None, max_length=200, description="one group id"),
    prompt_id: str | None = Query(default=None, max_length=64,
                                  description="groups of this prompt (a rollout's prompt_id), at any step"),
    q: str | None = Query(default=None, max_length=200,
                          description="text in the prompt or the completion (substring, any case)"),
    min_reward: Finite = None,
    max_reward: Finite = None,
    min_length: Length = None,
    max_length: Length = None,
    order: Literal["desc", "asc"] = Query(default="desc", description="newest step first, or oldest"),
    limit: int = Query(default=100, ge=1, le=1000,
                       description="most rollouts in the page; a group larger than this comes whole, alone"),
    cursor: str | None = Query(default=None, max_length=200),
) -> RolloutPage:
    """Sampled whole groups of rollouts; a page never splits a group.

    Filters on groups (step, group, prompt_id, difficulty) pick the groups; filters on
    rollouts (sign, advantage, reward, length, q) pick which of a group's rollouts are
    returned, and leave out groups with none.
    """
    found = RolloutFilter(
        step=step, min_step=min_step, max_step=max_step, group=group, prompt=prompt_id,
        difficulty=_interval("difficulty", difficulty), sign=sign, advantage=_interval("advantage", advantage),
        min_reward=min_reward, max_reward=max_reward, min_length=min_length, max_length=max_length,
        q=clean_text(q) if q else None, order=order)
    with db.transaction() as session:
        try:
            return rollout_reads.read_page(session, run_id, who, found, limit, cursor)
        except BadCursor as exc:
            raise HTTPException(422, str(exc)) from None


@router.get("/rollouts/steps", response_model=RolloutSteps)
def rollout_steps(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    min_step: StepBound = None,
    max_step: StepBound = None,
    limit: int = Query(default=10_000, ge=1, le=100_000),
    order: Literal["asc", "desc"] = "asc",
) -> RolloutSteps:
    """The steps that hold rollouts, from the first (or the last, order=desc): what a step picker offers."""
    with db.transaction() as session:
        return rollout_reads.read_steps(session, run_id, who, min_step, max_step, limit, order)


@router.get("/samples", response_model=SampleList, deprecated=True)
def read_samples(
    run_id: RunId,
    db: DatabaseDep,
    who: PrincipalDep,
    limit: int = Query(default=20, ge=1, le=500),
    min_step: StepBound = None,
    max_step: StepBound = None,
) -> SampleList:
    """Completions of the newest steps (at or before max_step), newest step first: /rollouts without
    prompts or groups, kept for clients of the earlier format."""
    with db.transaction() as session:
        return rollout_reads.recent_samples(session, run_id, who, limit, min_step, max_step)
