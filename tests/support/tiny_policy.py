"""A tiny policy for the framework tests: a Llama from tests.support.tiny_trl sampling "add a + b ="
answers on the CPU, a rule that scores them, and the stand-in per-token entropy and
log-probability (functions of the token alone, so a test can tell from a response which row
of numbers is its own)."""

from __future__ import annotations

from typing import Any

import torch

from tests.support.tiny_trl import build_model, build_tokenizer

__all__ = ["PROMPT_LEN", "RESPONSE_LEN", "Policy", "token_entropy", "token_logprob"]

PROMPT_LEN, RESPONSE_LEN = 8, 6


def token_entropy(ids: Any) -> Any:
    """The stand-in actor's entropy of a response token, a function of the token alone."""
    return 0.25 + (ids % 7) * 0.5


def token_logprob(ids: Any) -> Any:
    return -0.1 - (ids % 5) * 0.2


class Policy:
    """The tiny Llama and its word-level tokenizer, sampling on the CPU."""

    def __init__(self, seed: int = 0):
        self.tokenizer = build_tokenizer()
        self.model = build_model(self.tokenizer, seed)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, text: str) -> tuple[list[int], list[int]]:
        prompt = self.tokenizer(text)["input_ids"][-PROMPT_LEN:]
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.generator)))
        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                      do_sample=True, max_new_tokens=RESPONSE_LEN, min_new_tokens=1,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        response = out[0, len(prompt):].tolist()
        if self.tokenizer.eos_token_id in response:  # the eos is part of the response, as verl keeps it
            response = response[:response.index(self.tokenizer.eos_token_id) + 1]
        return prompt, response

    def score(self, response: list[int], answer: str) -> float:
        words = self.tokenizer.decode(response, skip_special_tokens=True).split()
        return 1.0 if words[:1] == [answer] else 0.5 if words and words[0].isdigit() else 0.0
