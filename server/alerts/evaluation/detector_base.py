"""What every detector shares: the verdict, the parameter base class, baselines and windows kept in
the alert's persisted memory, and number formatting for messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Verdict", "Params", "Finite", "OPS", "baseline", "push", "fmt"]

Finite = Field(allow_inf_nan=False)


class Verdict(NamedTuple):
    """hit: the trigger condition holds. clear: the clear condition holds (None: not hit).

    A detector with hysteresis clears at a stricter bound than it trips at: a step between
    the two (hit and clear both False) neither trips a quiet alert nor counts toward
    resolving a firing one, so a signal hovering at its threshold makes one episode.
    """

    hit: bool
    values: dict[str, Any]
    clear: bool | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def baseline(mem: dict, key: str, value: float, needed: int) -> float | None:
    """Mean of the first `needed` values seen; None until there are that many."""
    n, total = mem.get(key + "n", 0), mem.get(key + "s", 0.0)
    if n < needed:
        n, total = n + 1, total + value
        mem[key + "n"], mem[key + "s"] = n, total
        if n < needed:
            return None
    return total / n


def push(window: list, item, size: int) -> None:
    window.append(item)
    if len(window) > size:
        del window[: len(window) - size]


def fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)
