"""A tiny autoregressive policy: embedding, one GRU layer, a linear output head.

``policy.head`` is the unembedding (hidden → 10 digit logits) whose update geometry the
hook can watch. Sampling is real, at temperature 1, with a caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Policy", "Rollout"]


@dataclass
class Rollout:
    """Sampled completions: tokens, their log-probs and the full-distribution entropy."""

    tokens: torch.Tensor  # long [N, T]
    logprobs: torch.Tensor  # float [N, T]
    entropy: torch.Tensor  # float [N, T]
    mask: torch.Tensor  # bool [N, T]


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


class Policy(nn.Module):
    """GRU language model over the task's vocabulary whose actions are the 10 digits."""

    def __init__(self, vocab_size: int, n_actions: int = 10, embed: int = 32, hidden: int = 96):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_actions)

    def logits(self, prompt: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [N, T, actions] for completion ``tokens`` after ``prompt``."""
        inputs = torch.cat([prompt, tokens[:, :-1]], dim=1)
        out, _ = self.rnn(self.embed(inputs))
        return self.head(out[:, prompt.shape[1] - 1 :])

    def score(self, prompt: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs and entropies [N, T] of ``tokens``, with gradients."""
        logits = self.logits(prompt, tokens)
        logp = torch.log_softmax(logits, dim=-1)
        token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return token_logp, -(logp.exp() * logp).sum(dim=-1)

    @torch.no_grad()
    def sample(
        self, prompt: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Rollout:
        """Sample mask.shape[1] tokens per prompt; positions outside ``mask`` are padding."""
        n, steps = mask.shape
        out, h = self.rnn(self.embed(prompt))
        last = out[:, -1]
        tokens, logps, ents = [], [], []
        for _ in range(steps):
            logits = self.head(last)
            logp = torch.log_softmax(logits, dim=-1)
            tok = torch.multinomial(logp.exp(), 1, generator=generator)
            tokens.append(tok.squeeze(1))
            logps.append(logp.gather(1, tok).squeeze(1))
            ents.append(-(logp.exp() * logp).sum(dim=-1))
            step_out, h = self.rnn(self.embed(tok), h)
            last = step_out[:, -1]
        tokens_t = torch.stack(tokens, dim=1) * mask
        return Rollout(
            tokens=tokens_t,
            logprobs=torch.stack(logps, dim=1) * mask,
            entropy=torch.stack(ents, dim=1) * mask,
            mask=mask,
        )
