"""Reads of the stored rollouts: pages of whole groups under filters, text search, steps.

A page never splits a group: filters on groups (step, group, prompt, difficulty) pick
groups; filters on rollouts (sign, advantage, reward, length, text) pick the rollouts
shown of each group that has any. Text search is a case-insensitive substring match on
the prompt or the completion, through FTS5 trigram tables on SQLite (for three characters
or more) and pg_trgm indexes on PostgreSQL.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import and_, column, func, or_, select, table
from sqlalchemy.orm import Session, aliased

from fadewatch.protocol.rollouts import ZERO_TOL, Interval, sign_of
from fadewatch.server.auth import Principal
from fadewatch.server.models import Rollout, RolloutGroup
from fadewatch.server.rollout_schemas import RolloutOut, RolloutPage, RolloutSteps, TokenDetailOut
from fadewatch.server.read_schemas import SampleList, SampleOut
from fadewatch.server.store.runs import load_run

__all__ = ["RolloutFilter", "BadCursor", "read_page", "read_steps", "recent_samples"]

G, R = RolloutGroup, Rollout
# A text search over many steps first reads the rows of this many steps, in page order.
SEARCH_WINDOW = 64


class BadCursor(ValueError):
    """A cursor this server did not hand out."""


@dataclass(frozen=True)
class RolloutFilter:
    step: int | None = None
    min_step: int | None = None
    max_step: int | None = None
    group: str | None = None
    prompt: str | None = None
    difficulty: Interval | None = None
    sign: Literal["pos", "neg", "zero"] | None = None
    advantage: Interval | None = None
    min_reward: float | None = None
    max_reward: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    q: str | None = None
    order: Literal["asc", "desc"] = "desc"


def _within(col, interval: Interval) -> list:
    conds = []
    if interval.lo != float("-inf"):
        conds.append(col >= interval.lo if interval.lo_closed else col > interval.lo)
    if interval.hi != float("inf"):
        conds.append(col <= interval.hi if interval.hi_closed else col < interval.hi)
    return conds or [col.isnot(None)]


def _group_conditions(f: RolloutFilter) -> list:
    conds = []
    if f.step is not None:
        conds.append(G.step == f.step)
    if f.min_step is not None:
        conds.append(G.step >= f.min_step)
    if f.max_step is not None:
        conds.append(G.step <= f.max_step)
    if f.group is not None:
        conds.append(G.group_key == f.group)
    if f.prompt is not None:
        conds.append(G.prompt_id == f.prompt)
    if f.difficulty is not None:
        conds += _within(G.solve_rate, f.difficulty)
    return conds


def _contains(column, q: str, fold: bool):
    """column holds q: a LIKE pattern, escaped only where q has LIKE's own characters (SQLite's
    trigram index does not take a LIKE with an ESCAPE clause). fold: ILIKE (PostgreSQL); SQLite's
    LIKE ignores ASCII case by itself, and lower() around a column would hide it from the index."""
    like = column.ilike if fold else column.like
    if not any(c in q for c in "%_\\"):
        return like(f"%{q}%")
    return like("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\")


def _search(session: Session, run_id: int, q: str, direct: bool = False):
    """Rollouts whose completion, or whose group's prompt, holds q: each side found through its
    own index (pg_trgm on PostgreSQL, the FTS5 trigram tables on SQLite), or (direct) by reading
    the rows the other conditions leave."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    if direct:
        return or_(_contains(R.completion, q, not sqlite), _contains(G.prompt, q, not sqlite))
    if not sqlite:
        r, g = aliased(Rollout), aliased(RolloutGroup)
        completions = select(r.id).where(r.run_id == run_id, _contains(r.completion, q, True))
        prompts = select(g.id).where(g.run_id == run_id, _contains(g.prompt, q, True))
    elif len(q) < 3:  # under a trigram: the run's own rows are read
        return or_(_contains(R.completion, q, False), _contains(G.prompt, q, False))
    else:
        fts_completions = table("rollouts_fts", column("rowid"), column("completion"))
        fts_prompts = table("rollout_groups_fts", column("rowid"), column("prompt"))
        completions = select(fts_completions.c.rowid).where(_contains(fts_completions.c.completion, q, False))
        prompts = select(fts_prompts.c.rowid).where(_contains(fts_prompts.c.prompt, q, False))
    return or_(R.id.in_(completions), R.group_id.in_(prompts))


def _rollout_conditions(session: Session, run_id: int, f: RolloutFilter, direct: bool = False) -> list:
    conds = []
    if f.sign == "pos":
        conds.append(R.advantage > ZERO_TOL)
    elif f.sign == "neg":
        conds.append(R.advantage < -ZERO_TOL)
    elif f.sign == "zero":
        conds.append(R.advantage.between(-ZERO_TOL, ZERO_TOL))
    if f.advantage is not None:
        conds += _within(R.advantage, f.advantage)
    if f.min_reward is not None:
        conds.append(R.reward >= f.min_reward)
    if f.max_reward is not None:
        conds.append(R.reward <= f.max_reward)
    if f.min_length is not None:
        conds.append(R.length >= f.min_length)
    if f.max_length is not None:
        conds.append(R.length <= f.max_length)
    if f.q:
        conds.append(_search(session, run_id, f.q, direct))
    return conds


def encode_cursor(step: int, rank: int, group_id: int) -> str:
    return base64.urlsafe_b64encode(f"g1:{step}:{rank}:{group_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        tag, step, rank, group_id = raw.split(":")
        values = int(step), int(rank), int(group_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor: pass the next_cursor of an earlier answer unchanged") from None
    if tag != "g1" or not all(0 <= v < 2**62 for v in values):
        raise BadCursor("cursor: pass the next_cursor of an earlier answer unchanged")
    return values


def _after(cursor: str, order: str):
    step, rank, group_id = _decode_cursor(cursor)
    later = G.step < step if order == "desc" else G.step > step
    return or_(later, and_(G.step == step, or_(G.rank > rank, and_(G.rank == rank, G.id > group_id))))


def _groups_page(session: Session, gconds: list, rconds: list, order: str, limit: int) -> list:
    """(group id, step, rank, rollouts shown) of the first limit + 1 groups with any rollout shown."""
    keys = (G.step.desc() if order == "desc" else G.step.asc(), G.rank.asc(), G.id.asc())
    if rconds:
        query = (select(G.id, G.step, G.rank, func.count(R.id)).join(R, R.group_id == G.id)
                 .where(*gconds, *rconds).group_by(G.id, G.step, G.rank))
    else:
        query = select(G.id, G.step, G.rank, G.size).where(*gconds)
    return session.execute(query.order_by(*keys).limit(limit + 1)).all()


def _fill(found: list, limit: int) -> list:
    """The groups of one page: as many as `limit` rollouts hold, and at least one."""
    taken, total = [], 0
    for row in found:
        if taken and total + row[3] > limit:
            break
        taken.append(row)
        total += row[3]
    return taken


def _window(session: Session, gconds: list, order: str) -> tuple[object, bool]:
    """A bound on the first SEARCH_WINDOW steps in page order, and whether it holds them all."""
    steps = select(G.step).where(*gconds).distinct().order_by(
        G.step.desc() if order == "desc" else G.step.asc()).limit(SEARCH_WINDOW).subquery()
    edge, count = session.execute(select(
        func.min(steps.c.step) if order == "desc" else func.max(steps.c.step), func.count())).one()
    if edge is None:
        return None, True
    return (G.step >= edge if order == "desc" else G.step <= edge), count < SEARCH_WINDOW


def read_page(session: Session, run_id: int, who: Principal, f: RolloutFilter, limit: int,
              cursor: str | None = None) -> RolloutPage:
    """Whole groups, newest step first (or oldest, order="asc"), as many as `limit` rollouts hold."""
    load_run(session, run_id, who)
    gconds = [G.run_id == run_id, *_group_conditions(f)]
    if cursor:
        gconds.append(_after(cursor, f.order))
    direct = _rollout_conditions(session, run_id, f, direct=True)
    found = taken = None
    if f.q and f.step is not None:
        found = _groups_page(session, gconds, direct, f.order, limit)  # one step's rows are few
        taken = _fill(found, limit)
    elif f.q:
        # A search over many steps reads the rows of the first steps of the page first: a
        # common text fills the page there at once; only a rarer one needs the index.
        bound, whole = _window(session, gconds, f.order)
        if bound is None:
            found = taken = []
        else:
            found = _groups_page(session, [*gconds, bound], direct, f.order, limit)
            taken = _fill(found, limit)
            if not whole and len(taken) == len(found):
                found = taken = None  # the window did not fill the page: search the whole range
    if found is None:
        found = _groups_page(session, gconds, _rollout_conditions(session, run_id, f), f.order, limit)
        taken = _fill(found, limit)
    next_cursor = encode_cursor(*taken[-1][1:3], taken[-1][0]) if len(taken) < len(found) else None
    return RolloutPage(run_id=run_id, rollouts=_rollouts(session, [row[0] for row in taken], direct),
                       groups=len(taken), next_cursor=next_cursor)


def _rollouts(session: Session, group_ids: list[int], rconds: list) -> list[RolloutOut]:
    if not group_ids:
        return []
    place = {gid: i for i, gid in enumerate(group_ids)}
    rows = session.execute(
        select(R.id, R.group_id, R.idx, R.completion, R.cut, R.reward, R.rewards, R.advantage, R.length,
               R.entropy, R.tokens, G.step, G.group_key, G.prompt, G.prompt_id, G.prompt_cut, G.solve_rate,
               G.size)
        .join(G, G.id == R.group_id).where(R.group_id.in_(group_ids), *rconds)
    ).all()
    rows.sort(key=lambda r: (place[r.group_id], r.idx))
    return [RolloutOut(
        id=r.id, step=r.step, group=r.group_key, index=r.idx, group_size=r.size, prompt=r.prompt,
        prompt_id=r.prompt_id, prompt_cut=r.prompt_cut, completion=r.completion, cut=r.cut, reward=r.reward,
        rewards=r.rewards, advantage=r.advantage, sign=sign_of(r.advantage), length=r.length, entropy=r.entropy,
        solve_rate=r.solve_rate, tokens=TokenDetailOut(**r.tokens) if isinstance(r.tokens, dict) else None,
    ) for r in rows]


def read_steps(session: Session, run_id: int, who: Principal, min_step: int | None, max_step: int | None,
               limit: int, order: str = "asc") -> RolloutSteps:
    """The steps that hold rollouts in [min_step, max_step], from the first (or the last), and how many."""
    load_run(session, run_id, who)
    conds = [G.run_id == run_id]
    if min_step is not None:
        conds.append(G.step >= min_step)
    if max_step is not None:
        conds.append(G.step <= max_step)
    query = select(G.step).where(*conds).distinct().order_by(G.step.desc() if order == "desc" else G.step)
    steps = list(session.scalars(query.limit(limit + 1)))
    total = steps and session.scalar(select(func.count(G.step.distinct())).where(*conds))
    return RolloutSteps(run_id=run_id, steps=steps[:limit], total=total or 0, truncated=len(steps) > limit)


def recent_samples(session: Session, run_id: int, who: Principal, limit: int, min_step: int | None = None,
                   max_step: int | None = None) -> SampleList:
    """The earlier samples view: completions of the newest steps in [min_step, max_step]."""
    load_run(session, run_id, who)
    conds = [G.run_id == run_id]
    if min_step is not None:
        conds.append(G.step >= min_step)
    if max_step is not None:
        conds.append(G.step <= max_step)
    rows = session.execute(
        select(G.step, G.group_key, R.completion, R.reward, R.advantage).join(R, R.group_id == G.id)
        .where(*conds).order_by(G.step.desc(), R.idx, G.rank).limit(limit)).all()
    return SampleList(run_id=run_id, samples=[
        SampleOut(step=r.step, text=r.completion, group=r.group_key or None, reward=r.reward,
                  advantage=r.advantage) for r in rows])

