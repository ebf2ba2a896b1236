"""prepare_rollouts(): checks of the rollout inputs on the training thread; nothing copied.

Called by fadewatch.stats.prepare() once the other inputs are checked: prompts (one per
rollout or one per group, as text or token ids), the tokenizer, named reward parts.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.protocol.rollouts import MAX_REWARD_PARTS
from fadewatch.rollouts.config import RolloutConfig
from fadewatch.rollouts.text import Decoder
from fadewatch.stats.backend import is_torch
from fadewatch.stats.inputs import _describe, _rollout_input

__all__ = ["RolloutPlan", "RolloutInputs", "prepare_rollouts"]


class RolloutPlan(NamedTuple):
    """What one step may keep: the settings, its bytes (0: none) and a seed for the draw."""

    config: RolloutConfig
    budget: int
    seed: int = 0


@dataclass
class RolloutInputs:
    plan: RolloutPlan
    prompts: Any = None
    prompts_kind: str | None = None     # "text" | "ids" | "ids_ragged"
    prompt_lengths: np.ndarray | None = None
    per_group: bool = False             # one prompt per group, groups in order of first appearance
    decoder: Decoder | None = None
    parts: dict[str, Any] = field(default_factory=dict)


def _plan(rollouts: Any) -> RolloutPlan:
    if rollouts is None:
        rollouts = RolloutConfig()
    if isinstance(rollouts, RolloutConfig):
        return RolloutPlan(rollouts, rollouts.step_bytes if rollouts.enabled else 0, rollouts.seed)
    if isinstance(rollouts, RolloutPlan):
        return rollouts
    raise UsageError(f"rollouts must be a fadewatch.RolloutConfig, got {type(rollouts).__name__}")


def _group_count(inp: Any) -> int | None:
    if inp.group_size is not None:
        return inp.n // inp.group_size
    if inp.group_ids is None:
        return None
    x = inp.group_ids
    x = x.numpy() if is_torch(x) else np.asarray(x)
    try:
        return len(np.unique(x))
    except TypeError:
        return None  # reported by the group statistics


def _prompts(out: RolloutInputs, inp: Any, prompts: Any) -> None:
    kind, info = _describe("prompts", prompts)
    if kind == "dense" and len(info) != 2:
        raise UsageError("prompts: expected N strings, token ids of shape [N, T], N lists of token ids, or the "
                         f"same with one entry per group; got shape {list(info)}")
    if kind == "dense":
        if isinstance(prompts, np.ndarray) and prompts.dtype.kind not in "iu" or is_torch(prompts) and (
                prompts.is_floating_point() or prompts.is_complex()):
            raise UsageError(f"prompts: token ids must be integers, got dtype {prompts.dtype}")
        count, out.prompts_kind = info[0], "ids"
    elif kind == "ragged":
        first = next((row for row in prompts if len(row)), None)
        if first is not None and not (is_torch(first) or isinstance(first, np.ndarray)) and not isinstance(
                first[0], (numbers.Integral, np.integer)):
            raise UsageError(f"prompts: lists of token ids must hold ints, got {type(first[0]).__name__}; "
                             "for chat messages pass their text")
        count, out.prompts_kind, out.prompt_lengths = len(info), "ids_ragged", info
    else:
        count, out.prompts_kind = info, "text"
    if count != inp.n:
        ng = _group_count(inp)
        if count != ng:
            raise UsageError(f"prompts has {count} entries but the step has {inp.n} rollouts"
                             + (f" in {ng} groups" if ng is not None else "")
                             + ": give one prompt per rollout, or one per group (in the order groups first appear)")
        out.per_group = True
    out.prompts = prompts


def prepare_rollouts(inp: Any, shapes: Any, prompts: Any = None, tokenizer: Any = None,
                     reward_parts: Any = None, rollouts: Any = None) -> RolloutInputs | None:
    """Check the rollout inputs against the step's other inputs (StepInputs `inp`)."""
    if inp.completions is None:
        given = [name for name, v in (("prompts", prompts), ("reward_parts", reward_parts)) if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)} describe rollouts: pass completions= as well")
        return None
    out = RolloutInputs(_plan(rollouts))
    if tokenizer is not None:
        out.decoder = Decoder(tokenizer)
    if prompts is not None:
        _prompts(out, inp, prompts)
    if reward_parts is not None:
        if not isinstance(reward_parts, dict) or len(reward_parts) > MAX_REWARD_PARTS:
            raise UsageError(f"reward_parts must be a dict of at most {MAX_REWARD_PARTS} names -> one value per rollout")
        from fadewatch.records import check_name

        for name, values in reward_parts.items():
            check_name(name, "reward part")
            out.parts[name] = _rollout_input(f"reward_parts[{name!r}]", values, shapes)
    return out
