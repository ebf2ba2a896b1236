"""fadewatch: live FADE diagnostics for RL post-training of language models."""

from fadewatch.errors import FadewatchError, ServerError, UsageError

__version__ = "0.1.0"

__all__ = ["FadewatchError", "ServerError", "UsageError", "__version__"]
