"""Storing the rollouts of newly stored steps; the ingest service owns the transaction.

A record's `rollouts` are whole groups in the hook's order of choice. Records of the
hook's earlier format carry `samples` (completions without prompts) instead: they are
stored the same way, one group per group id, so the inspector shows them too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.orm import Session

from fadewatch.protocol.rollouts import prompt_id
from fadewatch.server.models import Rollout, RolloutGroup
from fadewatch.server.rollout_schemas import group_key
from fadewatch.server.schemas import Sample, StepRecord

__all__ = ["add_rollouts", "groups_of"]

KEY_CHARS = 200


def _from_samples(samples: Iterable[Sample]) -> list[dict]:
    by_group: dict[str, list[dict]] = {}
    for i, s in enumerate(samples):
        # index: the sample's place in the step, so the step's samples read back in their order.
        by_group.setdefault(group_key(s.group)[:KEY_CHARS], []).append(
            {"index": i, "text": s.text.replace("\x00", "\ufffd"), "reward": s.reward, "advantage": s.advantage})
    return [{"group": key, "completions": members} for key, members in by_group.items()]


def groups_of(record: StepRecord) -> list[dict]:
    """A record's groups as plain dicts: its rollouts, or else its samples."""
    if record.rollouts:
        return [{**g.model_dump(exclude={"completions"}), "group": group_key(g.group),
                 "completions": [c.model_dump() for c in g.completions]} for g in record.rollouts]
    return _from_samples(record.samples or ())


def add_rollouts(session: Session, run_id: int, records: list[StepRecord]) -> int:
    """Store the groups of these (newly stored) records; returns how many rollouts were stored."""
    group_rows: list[dict] = []
    members: list[tuple[int, list[dict]]] = []
    for record in records:
        for rank, g in enumerate(groups_of(record)):
            prompt = g.get("prompt")
            group_rows.append({
                "run_id": run_id, "step": record.step, "rank": rank, "group_key": g["group"],
                "prompt": prompt, "prompt_cut": g.get("prompt_cut", 0),
                "prompt_id": None if prompt is None else prompt_id(prompt),
                "solve_rate": g.get("solve_rate"), "size": len(g["completions"]),
            })
            members.append((record.step, g["completions"]))
    if not group_rows:
        return 0
    ids = session.scalars(insert(RolloutGroup).returning(RolloutGroup.id, sort_by_parameter_order=True),
                          group_rows).all()
    rows = [
        {"group_id": gid, "run_id": run_id, "step": step, "idx": c.get("index", i), "completion": c["text"],
         "cut": c.get("cut", 0), "reward": c.get("reward"), "advantage": c.get("advantage"),
         "length": c.get("length"), "entropy": c.get("entropy"), "rewards": c.get("rewards"),
         "tokens": c.get("tokens")}
        for gid, (step, completions) in zip(ids, members)
        for i, c in enumerate(completions)
    ]
    session.execute(insert(Rollout), rows)
    return len(rows)
