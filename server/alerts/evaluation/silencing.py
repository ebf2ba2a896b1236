"""Silence matchers: label name, operator and value; a silence mutes alerts matching all of them."""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Matcher", "matches", "silenced_by"]

_LABEL = r"[A-Za-z_][A-Za-z0-9_]{0,63}"


class Matcher(BaseModel):
    """`=` equal, `!=` not equal, `~` glob (`*`, `?`, `[abc]`), `!~` not matching the glob."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=f"^{_LABEL}$", description="a label: project, run, run_id, rule, severity, detector, or a rule label")
    op: Literal["=", "!=", "~", "!~"] = "="
    value: str = Field(max_length=200)


def _glob(pattern: str, value: str) -> bool:
    return re.fullmatch(fnmatch.translate(pattern), value, flags=re.DOTALL) is not None


def matches(matchers: list[dict], labels: dict[str, str]) -> bool:
    for m in matchers:
        actual = labels.get(m["name"], "")
        op, want = m.get("op", "="), m["value"]
        ok = {"=": actual == want, "!=": actual != want}.get(op)
        if ok is None:
            hit = _glob(want, actual)
            ok = hit if op == "~" else not hit
        if not ok:
            return False
    return True


def silenced_by(silences: list[tuple[int, list[dict]]], labels: dict[str, str]) -> int | None:
    """The id of the first active silence that matches, if any."""
    for silence_id, matchers in silences:
        if matches(matchers, labels):
            return silence_id
    return None
