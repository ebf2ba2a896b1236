"""The one exception root of fadewatch.

    FadewatchError
    ├── UsageError        misuse by the caller: wrong shapes, log before init, ...
    │                     (also a ValueError, so generic handlers still catch it)
    └── ServerError       the server answered with an error the client cannot retry

I/O trouble (server away, disk full) is never raised into the training loop: the hook
counts it and reports it in ``run.health()`` instead.
"""

__all__ = ["FadewatchError", "UsageError", "ServerError"]


class FadewatchError(Exception):
    """Base class of every error fadewatch raises."""


class UsageError(FadewatchError, ValueError):
    """The caller used the API wrongly; the message says what to fix."""


class ServerError(FadewatchError):
    """The server refused a request for a reason a retry will not fix."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code
