"""prepare(): cheap validation on the training thread; references kept, nothing copied."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.stats.backend import is_torch
from fadewatch.stats.config import StatsConfig
from fadewatch.stats.scalars import Ratio

__all__ = ["StepInputs", "prepare"]


@dataclass
class StepInputs:
    """One step's inputs, validated; arrays are the caller's own objects (not copies)."""

    config: StatsConfig
    n: int | None = None                # rollouts
    t: int | None = None                # token positions of the dense token-level inputs
    advantages: Any = None
    adv_token: bool = False             # advantages given per token
    rewards: Any = None
    group_ids: Any = None               # per-rollout ids (host), or None
    group_size: int | None = None       # or consecutive blocks of this many rollouts
    entropy: Any = None
    logprobs: Any = None
    mask: Any = None
    lengths: np.ndarray | None = None   # tokens per rollout when token inputs came ragged
    ragged: tuple[str, ...] = ()        # which token-level inputs came as lists of rows
    completions: Any = None
    completions_kind: str | None = None  # "text" | "ids" | "ids_ragged"
    completion_lengths: np.ndarray | None = None
    scalars: dict[str, Any] = field(default_factory=dict)
    rollouts: Any = None                # fadewatch.rollouts.inputs.RolloutInputs, or None


def _is_row(v: Any) -> bool:
    if isinstance(v, (str, bytes)):
        return False
    if isinstance(v, np.ndarray) or is_torch(v):
        return v.ndim >= 1
    return isinstance(v, (list, tuple))


def _lengths(name: str, rows: Any) -> np.ndarray:
    try:
        return np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    except TypeError:
        raise UsageError(f"{name}: a list of per-rollout rows must hold only sequences "
                         "(lists, arrays or 1-D tensors), one per rollout") from None


def _describe(name: str, x: Any) -> tuple[str, Any]:
    """("dense", shape) | ("ragged", lengths) | ("text", n)."""
    if isinstance(x, np.ndarray) or is_torch(x):
        if isinstance(x, np.ndarray) and x.dtype.kind in "US" and x.ndim == 1:
            return "text", len(x)
        if isinstance(x, np.ndarray) and x.dtype == object and x.ndim == 1 and len(x):
            if isinstance(x[0], str):
                return "text", len(x)
            if _is_row(x[0]):
                return "ragged", _lengths(name, x)
        return "dense", tuple(int(s) for s in x.shape)
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise UsageError(f"{name} is empty: pass None to leave it out")
        if isinstance(x[0], str):
            return "text", len(x)
        if _is_row(x[0]):
            return "ragged", _lengths(name, x)
        if not isinstance(x[0], (numbers.Number, np.generic)):
            raise UsageError(f"{name}: expected numbers, got a list of {type(x[0]).__name__}")
        return "dense", (len(x),)
    raise UsageError(f"{name}: expected a torch tensor, a numpy array or a list, "
                     f"got {type(x).__name__}")


def _check_numeric(name: str, x: Any) -> None:
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        if x.dtype == object and x.size and isinstance(x.flat[0], (numbers.Real, np.generic)):
            return  # numbers in an object array: converted in reduce()
        raise UsageError(f"{name}: expected numbers, got a numpy array of dtype {x.dtype}")
    if is_torch(x) and x.is_complex():
        raise UsageError(f"{name}: expected real numbers, got a tensor of dtype {x.dtype}")


class _Shapes:
    """Collects N and T from every input and says which input disagrees."""

    def __init__(self) -> None:
        self.n: tuple[str, int] | None = None
        self.t: tuple[str, int] | None = None

    def rollouts(self, name: str, n: int) -> None:
        if self.n is None:
            self.n = (name, n)
        elif self.n[1] != n:
            raise UsageError(f"{name} has {n} rollouts but {self.n[0]} has {self.n[1]}: "
                             "every per-rollout input must have the same first dimension N")

    def tokens(self, name: str, shape: tuple[int, ...]) -> None:
        self.rollouts(name, shape[0])
        if self.t is None:
            self.t = (name, shape[1])
        elif self.t[1] != shape[1]:
            raise UsageError(f"{name} has shape {list(shape)} but {self.t[0]} has "
                             f"{self.t[1]} token positions: token-level inputs must all be [N, T]")


def _token_input(name: str, x: Any, shapes: _Shapes, ragged: dict[str, np.ndarray]) -> None:
    kind, info = _describe(name, x)
    if kind == "ragged":
        shapes.rollouts(name, len(info))
        ragged[name] = info
        return
    if kind != "dense" or len(info) != 2:
        got = f"shape {list(info)}" if kind == "dense" else "a list of strings"
        raise UsageError(f"{name}: expected per-token values of shape [N, T] (or a list of N "
                         f"per-rollout lists), got {got}")
    _check_numeric(name, x)
    shapes.tokens(name, info)


def _rollout_input(name: str, x: Any, shapes: _Shapes) -> Any:
    kind, info = _describe(name, x)
    if kind == "dense" and len(info) == 2 and info[1] == 1:
        x, info = x.reshape(-1), info[:1]
    if kind != "dense" or len(info) != 1:
        got = f"shape {list(info)}" if kind == "dense" else ("strings" if kind == "text" else "ragged rows")
        raise UsageError(f"{name}: expected one number per rollout, shape [N], got {got}")
    _check_numeric(name, x)
    shapes.rollouts(name, info[0])
    return x


def _scalars(scalars: Any) -> dict[str, Any]:
    if scalars is None:
        return {}
    if not isinstance(scalars, dict):
        raise UsageError(f"scalars must be a dict of name -> number, got {type(scalars).__name__}")
    for k, v in scalars.items():
        if not isinstance(k, str) or not k:
            raise UsageError(f"scalar names must be non-empty strings, got {k!r}")
        ok = v is None or isinstance(v, (numbers.Real, np.generic, Ratio))
        if (isinstance(v, np.ndarray) or is_torch(v)) and v.ndim == 0 or getattr(v, "shape", None) == (1,):
            ok = True
        if not ok:
            raise UsageError(f"scalar {k!r}: expected a number or a one-element tensor/array, "
                             f"got {type(v).__name__} {getattr(v, 'shape', '')}")
    return dict(scalars)


def prepare(advantages: Any = None, rewards: Any = None, group_ids: Any = None,
            entropy: Any = None, mask: Any = None, logprobs: Any = None,
            completions: Any = None, scalars: dict[str, Any] | None = None,
            config: StatsConfig | None = None, prompts: Any = None, tokenizer: Any = None,
            reward_parts: Any = None, rollouts: Any = None) -> StepInputs:
    """Validate one step's inputs (shapes, kinds) in O(N) and keep references to them.

    prompts, tokenizer, reward_parts and rollouts (a RolloutConfig) describe the rollouts
    kept for the inspector; see fadewatch.rollouts.
    """
    if config is None:
        config = StatsConfig()
    elif not isinstance(config, StatsConfig):
        raise UsageError(f"config must be a StatsConfig, got {type(config).__name__}")
    shapes, ragged = _Shapes(), {}
    inp = StepInputs(config=config, scalars=_scalars(scalars))

    if advantages is not None:
        kind, info = _describe("advantages", advantages)
        if kind == "dense" and (len(info) == 1 or (len(info) == 2 and info[1] == 1)):
            inp.advantages = _rollout_input("advantages", advantages, shapes)
        elif kind == "text":
            raise UsageError("advantages: expected numbers, got strings")
        elif kind == "dense" and len(info) != 2:
            raise UsageError("advantages: expected one per rollout [N] or one per token [N, T], "
                             f"got shape {list(info)}")
        else:
            _token_input("advantages", advantages, shapes, ragged)
            inp.advantages, inp.adv_token = advantages, True
    if rewards is not None:
        inp.rewards = _rollout_input("rewards", rewards, shapes)
    for name, x in (("entropy", entropy), ("logprobs", logprobs)):
        if x is not None:
            _token_input(name, x, shapes, ragged)
            setattr(inp, name, x)
    if mask is not None:
        kind, info = _describe("mask", mask)
        if kind != "dense" or len(info) != 2:
            raise UsageError("mask: expected a dense [N, T] array or tensor (nonzero = real token), "
                             f"got {'shape ' + str(list(info)) if kind == 'dense' else 'a list of rows'}")
        _check_numeric("mask", mask)
        shapes.tokens("mask", info)
        inp.mask = mask
    if completions is not None:
        _completions(inp, completions, shapes)
    if group_ids is not None:
        _groups(inp, group_ids, shapes)

    inp.n = shapes.n[1] if shapes.n else None
    inp.t = shapes.t[1] if shapes.t else None
    if ragged:
        lens = list(ragged.items())
        for name, l in lens[1:]:
            if not np.array_equal(l, lens[0][1]):
                raise UsageError(f"{name} and {lens[0][0]} have different per-rollout token "
                                 "counts: ragged token-level inputs must line up")
        inp.lengths, inp.ragged = lens[0][1], tuple(ragged)
        longest = int(inp.lengths.max()) if len(inp.lengths) else 0
        if inp.t is not None and longest > inp.t:
            raise UsageError(f"{lens[0][0]} has a row of {longest} tokens but the dense "
                             f"token-level inputs have only T={inp.t} positions")
        if inp.t is None:
            inp.t = longest
    if inp.n == 0:
        raise UsageError("the step has no rollouts (N=0): pass None instead of empty inputs")
    if completions is not None or prompts is not None or reward_parts is not None:
        from fadewatch.rollouts.inputs import prepare_rollouts  # it builds on the checks above

        inp.rollouts = prepare_rollouts(inp, shapes, prompts, tokenizer, reward_parts, rollouts)
    return inp


def _completions(inp: StepInputs, x: Any, shapes: _Shapes) -> None:
    kind, info = _describe("completions", x)
    if kind == "text":
        shapes.rollouts("completions", info)
        inp.completions_kind = "text"
    elif kind == "ragged":
        first = x[0]
        if len(first) and not isinstance(first[0], (numbers.Integral, np.integer)) and not (
                is_torch(first) or isinstance(first, np.ndarray)):
            raise UsageError("completions: lists of token ids must hold ints, got a list of "
                             f"{type(first[0]).__name__}; for chat messages pass their text, "
                             "e.g. [m[-1]['content'] for m in completions]")
        shapes.rollouts("completions", len(info))
        inp.completions_kind, inp.completion_lengths = "ids_ragged", info
    elif len(info) == 2:
        if isinstance(x, np.ndarray) and x.dtype.kind not in "iu" or is_torch(x) and (
                x.is_floating_point() or x.is_complex()):
            raise UsageError(f"completions: token ids must be integers, got dtype {x.dtype}")
        shapes.rollouts("completions", info[0])
        inp.completions_kind = "ids"
    else:
        raise UsageError("completions: expected N strings, token ids of shape [N, T], or N "
                         f"lists of token ids, got shape {list(info)}")
    inp.completions = x


def _groups(inp: StepInputs, x: Any, shapes: _Shapes) -> None:
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        g = int(x)
        if g < 1:
            raise UsageError(f"group_ids as a group size must be >= 1, got {g}")
        if shapes.n is None:
            raise UsageError("group_ids given as a group size needs a per-rollout input "
                             "(advantages, rewards, ...) to know N")
        if shapes.n[1] % g:
            raise UsageError(f"group size {g} does not divide N={shapes.n[1]}: "
                             "pass one group id per rollout instead")
        inp.group_size = g
        return
    kind, info = _describe("group_ids", x)
    if kind == "ragged" or (kind == "dense" and len(info) != 1):
        raise UsageError("group_ids: expected one id per rollout (shape [N], ints or strings) "
                         "or an int group size")
    if is_torch(x) and x.is_floating_point() or isinstance(x, np.ndarray) and x.dtype.kind == "f":
        raise UsageError(f"group_ids: expected integer or string ids, got dtype {x.dtype}")
    shapes.rollouts("group_ids", info if kind == "text" else info[0])
    if is_torch(x) and x.device.type != "cpu":
        # Group structure is needed on the host; this one small copy is the only device sync.
        x = x.detach().cpu()
    inp.group_ids = x
