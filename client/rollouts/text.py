"""Token ids to text: a tokenizer (``decode`` / ``batch_decode``) or a decode function.

Decoding runs on the hook's background thread, on the few rollouts kept. Per-token pieces
(for shading by entropy) are each token decoded alone; they are kept only when they join
to exactly the completion's text, so the shading never misplaces a character.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fadewatch.errors import UsageError
from fadewatch.notices import Notices

__all__ = ["Decoder", "ids_text"]

_NOTICES = Notices()


def ids_text(ids: list[int]) -> str:
    """Token ids shown as numbers: what a completion reads as without a tokenizer."""
    return " ".join(map(str, ids))


class Decoder:
    """One way to turn lists of token ids into text, whatever the caller passed."""

    def __init__(self, tokenizer: Any):
        if hasattr(tokenizer, "batch_decode"):
            self._decode: Callable[[list[list[int]]], list[str]] = lambda rows: _call(tokenizer.batch_decode, rows)
        elif hasattr(tokenizer, "decode"):
            self._decode = lambda rows: [_call(tokenizer.decode, row) for row in rows]
        elif callable(tokenizer):
            self._decode = lambda rows: [tokenizer(row) for row in rows]
        else:
            raise UsageError("tokenizer must have decode() or batch_decode() (a Hugging Face tokenizer), or be a "
                             f"function from a list of token ids to text; got {type(tokenizer).__name__}")

    def texts(self, rows: list[list[int]]) -> list[str]:
        """The text of each row; its ids as numbers when the tokenizer fails (it is the caller's code)."""
        if not rows:
            return []
        try:
            out = list(self._decode(rows))
            if len(out) != len(rows) or not all(isinstance(t, str) for t in out):
                raise TypeError("decode must return one string per list of ids")
        except Exception as exc:  # noqa: BLE001 - never lose the step over the caller's tokenizer
            _NOTICES.warning("decode", "fadewatch: the tokenizer failed to decode completions (%r); the "
                             "rollouts show token ids instead", exc)
            return [ids_text(row) for row in rows]
        return out

    def pieces(self, row: list[int], text: str) -> list[str] | None:
        """The text of each token, or None when they do not join to `text`."""
        parts = self.texts([[t] for t in row])
        return parts if "".join(parts) == text else None


def _call(fn: Callable, arg: Any) -> Any:
    # Special tokens (padding, end of text) are left out of what the inspector shows.
    try:
        return fn(arg, skip_special_tokens=True)
    except TypeError:
        return fn(arg)
