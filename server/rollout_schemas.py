"""Rollouts in the wire format (docs/wire-format.md) and in the read API's answers.

A step record's `rollouts` holds whole groups: one prompt and all of its completions.
Limits come from fadewatch.protocol.rollouts, the module the hook keeps to as well.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from fadewatch.protocol.rollouts import (
    MAX_COMPLETION_CHARS,
    MAX_DETAIL_TOKENS,
    MAX_GROUP_KEY_CHARS,
    MAX_GROUP_SIZE,
    MAX_PROMPT_CHARS,
    MAX_REWARD_PARTS,
    clean_text,
)

__all__ = ["TokenDetail", "CompletionIn", "RolloutGroupIn", "group_key", "RolloutOut", "RolloutPage",
           "RolloutSteps", "Sign", "INT32"]

INT32 = 2**31 - 1
Sign = Literal["pos", "neg", "zero"]


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


_OptionalFloat = Annotated[float | None, AfterValidator(_finite_or_none)]
_Count = Annotated[int, Field(ge=0, le=INT32)]


def _text(limit: int):
    return Annotated[str, Field(max_length=limit), AfterValidator(clean_text)]


class TokenDetail(BaseModel):
    """Per-token text pieces (they join to the completion's text), entropy and log-probability."""

    model_config = ConfigDict(extra="forbid")

    text: list[_text(200)] = Field(max_length=MAX_DETAIL_TOKENS)
    entropy: list[_OptionalFloat] | None = Field(default=None, max_length=MAX_DETAIL_TOKENS)
    logprob: list[_OptionalFloat] | None = Field(default=None, max_length=MAX_DETAIL_TOKENS)

    @model_validator(mode="after")
    def _aligned(self) -> TokenDetail:
        for name in ("entropy", "logprob"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.text):
                raise ValueError(f"tokens.{name} must have one value per token piece ({len(self.text)})")
        return self


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: _text(MAX_COMPLETION_CHARS)
    cut: _Count = Field(0, description="characters cut from the middle of a longer completion")
    reward: _OptionalFloat = None
    rewards: dict[Annotated[str, Field(min_length=1, max_length=200)], _OptionalFloat] | None = Field(
        default=None, max_length=MAX_REWARD_PARTS, description="named parts of the reward")
    advantage: _OptionalFloat = None
    length: _Count | None = Field(None, description="tokens")
    entropy: _OptionalFloat = Field(None, description="mean token entropy (nats)")
    tokens: TokenDetail | None = None


def group_key(group: str | int | None) -> str:
    """How a group id is stored: a string, empty for rollouts without a group."""
    return "" if group is None else str(group)


class RolloutGroupIn(BaseModel):
    """All completions of one prompt at one step."""

    model_config = ConfigDict(extra="forbid")

    group: Annotated[str, Field(max_length=MAX_GROUP_KEY_CHARS)] | Annotated[int, Field(ge=-2**63, lt=2**63)] | None = None
    prompt: _text(MAX_PROMPT_CHARS) | None = None
    prompt_cut: _Count = 0
    solve_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="share of the group's completions that succeeded")
    completions: list[CompletionIn] = Field(min_length=1, max_length=MAX_GROUP_SIZE)

    def text_chars(self) -> int:
        chars = len(self.prompt or "")
        for c in self.completions:
            chars += len(c.text) + (sum(map(len, c.tokens.text)) if c.tokens else 0)
        return chars


class TokenDetailOut(BaseModel):
    text: list[str]
    entropy: list[float | None] | None = None
    logprob: list[float | None] | None = None


class RolloutOut(BaseModel):
    id: int
    step: int
    group: str
    index: int = Field(description="position of the completion in its group as logged")
    group_size: int = Field(description="completions kept in the group: all of it")
    prompt: str | None
    prompt_id: str | None = Field(description="the same prompt at other steps has the same id")
    prompt_cut: int
    completion: str
    cut: int = Field(description="characters cut from the middle of the completion by the hook")
    reward: float | None
    rewards: dict[str, float | None] | None
    advantage: float | None
    sign: Sign | None
    length: int | None = Field(description="tokens")
    entropy: float | None = Field(description="mean token entropy (nats)")
    solve_rate: float | None = Field(description="the group's share of successes: its difficulty")
    tokens: TokenDetailOut | None


class RolloutPage(BaseModel):
    run_id: int
    rollouts: list[RolloutOut] = Field(description="whole groups, one after the other; a group's completions "
                                                   "in their logged order")
    groups: int = Field(description="groups in this page")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class RolloutSteps(BaseModel):
    run_id: int
    steps: list[int] = Field(description="steps holding rollouts, in the order asked for")
    total: int = Field(description="steps holding rollouts in the range, over all pages")
    truncated: bool = Field(description="more steps match than limit")
