"""The demo's verifiable task: write L digits whose sum is T.

A prompt is (L, T); many digit strings are correct, so a healthy policy keeps several
answers per prompt alive and a collapsing one settles on a single answer. The reward is
1 when the first L sampled digits sum to T, else 0. Tokenisation is built here: digits
are token ids 0–9 (also the policy's actions), then a separator, then one token per
length and one per target sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DigitSumTask"]

N_DIGITS = 10
SEP = N_DIGITS


@dataclass(frozen=True)
class DigitSumTask:
    """Prompts "L=<length> T=<target>"; completions are digit strings of that length."""

    lengths: tuple[int, ...] = (3, 4, 5)
    # Targets are drawn uniformly from [lo·9L, hi·9L]: away from the extremes, where only
    # a handful of digit strings are correct.
    target_range: tuple[float, float] = (0.2, 0.8)

    @property
    def max_length(self) -> int:
        return max(self.lengths)

    @property
    def max_target(self) -> int:
        return 9 * self.max_length

    @property
    def vocab(self) -> list[str]:
        return (
            [str(d) for d in range(N_DIGITS)]
            + ["<sep>"]
            + [f"L{n}" for n in range(self.max_length + 1)]
            + [f"T{t}" for t in range(self.max_target + 1)]
        )

    @property
    def prompt_length(self) -> int:
        return 3

    def encode(self, length: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Prompt token ids [n, 3]: length token, target token, separator."""
        len_tok = SEP + 1 + length
        tgt_tok = SEP + 2 + self.max_length + target
        return torch.stack([len_tok, tgt_tok, torch.full_like(length, SEP)], dim=1)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n prompts as (length [n], target [n]), mixed lengths and difficulties."""
        lengths = torch.tensor(self.lengths)
        length = lengths[torch.randint(len(self.lengths), (n,), generator=generator)]
        lo, hi = self.target_range
        lo_t = torch.ceil(lo * 9 * length).long()
        hi_t = torch.floor(hi * 9 * length).long()
        u = torch.rand(n, generator=generator)
        target = lo_t + (u * (hi_t - lo_t + 1)).long().clamp(max=hi_t - lo_t)
        return length, target

    def mask(self, length: torch.Tensor) -> torch.Tensor:
        """Bool [n, max_length]: which completion positions belong to each prompt."""
        return torch.arange(self.max_length) < length[:, None]

    def reward(self, target: torch.Tensor, digits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """1.0 where the masked digits sum to the target, else 0.0."""
        return ((digits * mask).sum(dim=1) == target).float()

    def prompt_text(self, length: int, target: int) -> str:
        return f"L={length} T={target}"

    def decode(self, ids: list[int]) -> str:
        """Completion token ids as text: the rollout inspector's tokenizer for this task."""
        return "".join(str(d) for d in ids if 0 <= d < N_DIGITS)

    def completion_texts(self, digits: torch.Tensor, length: torch.Tensor) -> list[str]:
        return ["".join(str(d) for d in row[:n]) for row, n in zip(digits.tolist(), length.tolist())]
