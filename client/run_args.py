"""What ``run.log()`` and ``fadewatch.init()`` check and sort on the training thread, before
any statistics: steps, names, extra scalars (host values now, accelerator values later)."""

from __future__ import annotations

from typing import Any

from fadewatch.errors import UsageError
from fadewatch.protocol.limits import MAX_ERROR_CHARS, MAX_STEP
from fadewatch.protocol.names import DISPLAY_NAME_RULE, display_name_problem
from fadewatch.records import check_name, on_accelerator, take_scalar

__all__ = ["check_step", "check_display_name", "describe_error", "leaves", "split_scalars"]


def check_step(step: object) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__") or on_accelerator(step):
        raise UsageError(f"step must be a non-negative int, got {step!r}")
    value = step.__index__()
    if not 0 <= value <= MAX_STEP:
        raise UsageError(f"step must be an int from 0 to {MAX_STEP}, got {value}")
    return value


def leaves(arrays: dict[str, Any], measured: dict[str, Any] | None):
    """The tensors to look at to tell where the inputs live (first rows of ragged lists too)."""
    for v in arrays.values():
        yield v
        if isinstance(v, (list, tuple)) and v:
            yield v[0]
    for v in (measured or {}).values():
        yield from (v if isinstance(v, tuple) else (v,))  # a Ratio holds two tensors


def describe_error(error: object) -> str | None:
    """"Type: message" of an exception (or the text given), cut to what the server keeps."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if not isinstance(error, str):
        raise UsageError(f"error must be an exception or a string, got {type(error).__name__}")
    return error[:MAX_ERROR_CHARS]


def check_display_name(value: object, what: str) -> str:
    problem = display_name_problem(value)
    if problem:
        raise UsageError(f"{what} must be {DISPLAY_NAME_RULE} ({problem}), got {value!r}")
    return value


def split_scalars(scalars: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Extra scalars as host floats now (None where not finite), and those on an accelerator,
    read later by the worker so that log() never waits on the device."""
    values: dict[str, float | None] = {}
    deferred: dict[str, Any] = {}
    for key, value in scalars.items():
        check_name(key)
        taken = take_scalar(key, value)
        if taken is None or isinstance(taken, float):
            values[key] = taken
        else:
            deferred[key] = taken
    return values, deferred
