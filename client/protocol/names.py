"""What a valid name is: metric names (scalars, histograms) and display names (projects, runs).

Each check comes in two forms: ``*_problem(value)`` says what is wrong (None when nothing
is), ``check_*(value)`` raises ValueError with that text. The server's schemas validate
with the second; the hook words its own UsageError around the first.
"""

from __future__ import annotations

import re

from fadewatch.protocol.limits import MAX_NAME_LENGTH

__all__ = [
    "METRIC_NAME_CHARS",
    "METRIC_NAME_RULE",
    "DISPLAY_NAME_RULE",
    "is_metric_name",
    "metric_name_problem",
    "check_metric_name",
    "display_name_problem",
    "check_display_name",
]

# The characters of a metric name, as a regex character class body: metric names become
# JSON paths and query-string lists (comma-separated), so commas and quotes are out.
METRIC_NAME_CHARS = r"A-Za-z0-9_\-./@:\[\] "
METRIC_NAME_RULE = f"1-{MAX_NAME_LENGTH} letters, digits, spaces and _ - . / @ : [ ]"
DISPLAY_NAME_RULE = f"1-{MAX_NAME_LENGTH} printable characters, not blank"

_METRIC_NAME = re.compile(f"[{METRIC_NAME_CHARS}]{{1,{MAX_NAME_LENGTH}}}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def is_metric_name(value: object) -> bool:
    return isinstance(value, str) and _METRIC_NAME.fullmatch(value) is not None


def metric_name_problem(value: object) -> str | None:
    """Why ``value`` is not a metric name, or None."""
    return None if is_metric_name(value) else f"metric names are {METRIC_NAME_RULE}"


def check_metric_name(value: str) -> str:
    problem = metric_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def display_name_problem(value: object) -> str | None:
    """Why ``value`` is not a project or run name, or None."""
    if not isinstance(value, str):
        return "names are text"
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        return f"names are 1-{MAX_NAME_LENGTH} characters"
    if _CONTROL_CHARS.search(value):
        return "names may not contain control characters"
    if not value.strip():
        return "name must not be blank"
    return None


def check_display_name(value: str) -> str:
    problem = display_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value
