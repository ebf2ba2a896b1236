"""Rollouts on the wire: the limits the hook keeps to and the server checks, and the small
rules both read them by (the sign of an advantage, difficulty and advantage intervals,
prompt ids, cutting a long text in the middle).

    STEP_BYTES            the hook's default budget per step: JSON bytes of a record's rollouts
    RUN_BYTES             the hook's default cap per run, over all its steps
    MAX_STEP_BYTES        the most either may be set to; the server refuses a record whose
                          rollout texts hold more characters than this
    MAX_GROUPS, MAX_GROUP_SIZE, MAX_PROMPT_CHARS, MAX_COMPLETION_CHARS, MAX_DETAIL_TOKENS, ...
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from fadewatch.protocol.limits import MAX_NAME_LENGTH

__all__ = [
    "STEP_BYTES", "RUN_BYTES", "MAX_STEP_BYTES", "MAX_GROUPS", "MAX_GROUP_SIZE", "MAX_GROUP_KEY_CHARS",
    "MAX_PROMPT_CHARS", "MAX_COMPLETION_CHARS", "MAX_REWARD_PARTS", "MAX_DETAIL_TOKENS", "ZERO_TOL",
    "SIGNS", "sign_of", "cut_middle", "cut_plan", "marker", "prompt_id", "Interval", "parse_interval", "clean_text",
]

STEP_BYTES = 64 * 1024
RUN_BYTES = 256 * 1024 * 1024
MAX_STEP_BYTES = 1024 * 1024
MAX_GROUPS = 256
MAX_GROUP_SIZE = 1024
MAX_GROUP_KEY_CHARS = MAX_NAME_LENGTH
MAX_PROMPT_CHARS = 32_768
MAX_COMPLETION_CHARS = 32_768
MAX_REWARD_PARTS = 16
MAX_DETAIL_TOKENS = 8192
# |A| at most this is a zero advantage: the default of the statistics' zero_tol.
ZERO_TOL = 1e-6
SIGNS = ("pos", "neg", "zero")


def sign_of(advantage: float | None, tol: float = ZERO_TOL) -> str | None:
    """"pos", "neg" or "zero" (None for a missing or non-finite advantage)."""
    if advantage is None or not math.isfinite(advantage):
        return None
    return "pos" if advantage > tol else "neg" if advantage < -tol else "zero"


def cut_middle(text: str, limit: int) -> tuple[str, int]:
    """At most `limit` characters of `text`: its head and tail around a marker; and how many were cut.

    The tail is kept because that is where a completion gives its answer.
    """
    head, tail, cut, marked = cut_plan(len(text), limit)
    if not cut:
        return text, 0
    if not marked:
        return text[:head], cut
    return text[:head] + marker(cut) + text[len(text) - tail:], cut


def cut_plan(length: int, limit: int) -> tuple[int, int, int, bool]:
    """(head, tail, cut, marked) of cut_middle for a text of `length` characters."""
    limit = max(limit, 0)
    if length <= limit:
        return length, 0, 0, False
    cut = length - limit
    for _ in range(4):  # the marker's length depends on the count it names: settle it
        keep = limit - len(marker(cut))
        if keep < 0:
            return limit, 0, length - limit, False  # no room for a marker: the head alone
        if length - keep == cut:
            break
        cut = length - keep
    head = (keep * 2 + 2) // 3
    return head, keep - head, cut, True


def marker(cut: int) -> str:
    """The text that stands for `cut` characters left out."""
    return f"\n… [{cut:,} characters cut] …\n"


def clean_text(text: str) -> str:
    """Text as it can be stored anywhere: NUL (which PostgreSQL refuses) and lone surrogates
    (which UTF-8 cannot hold) become U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def prompt_id(text: str) -> str:
    """A short stable id of a prompt's text: the same prompt at other steps has the same id."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class Interval:
    """A range of values with open or closed ends, written like the difficulty bins' labels."""

    lo: float
    hi: float
    lo_closed: bool = True
    hi_closed: bool = True

    def contains(self, x: float) -> bool:
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return above and below

    def label(self) -> str:
        if self.lo == self.hi:
            return f"{self.lo:g}"
        return f"{'[' if self.lo_closed else '('}{self.lo:g},{self.hi:g}{']' if self.hi_closed else ')'}"


_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf)\s*"
_RANGE = re.compile(r"\s*([\[(])" + _NUMBER + "," + _NUMBER + r"([\])])\s*")
_POINT = re.compile(_NUMBER)


def parse_interval(text: str) -> Interval:
    """"0.5" (one value), "[a,b)", "(a,b]", "(a,b)" or "[a,b]"; a ValueError says what is wrong."""
    if not isinstance(text, str) or len(text) > 100:
        raise ValueError("an interval is a short text such as 0, (0.2,0.3] or [-0.5,0)")
    point = _POINT.fullmatch(text)
    if point:
        v = float(point.group(1))
        if not math.isfinite(v):
            raise ValueError(f"{text!r}: a single value must be finite")
        return Interval(v, v)
    m = _RANGE.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not an interval: write 0.5, [a,b), (a,b], (a,b) or [a,b]")
    lo, hi = float(m.group(2)), float(m.group(3))
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"{text!r}: the lower end must not be above the upper end")
    return Interval(lo, hi, m.group(1) == "[", m.group(4) == "]")
