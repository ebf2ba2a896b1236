"""The one exception root of fadewatch.

    FadewatchError
    ├── UsageError        misuse by the caller: wrong shapes, log before init, an unknown
    │                     metric name, ... (also a ValueError, so generic handlers catch it)
    └── ServerError       a request to the server failed (status_code: its HTTP status, if any)
        ├── Unauthorized  401: a token is needed, or it is unknown or revoked
        ├── NotFoundError 404: an unknown run or alert (or one of another project)
        └── Unavailable   no answer (connection refused, timeout) or a 5xx: try again later

I/O trouble (server away, disk full) is never raised into the training loop: the hook
counts it and reports it in ``run.health()`` instead. ServerError and its kinds are what
the dashboard, reports and other readers of the API (``ApiClient.request``) meet.
"""

__all__ = ["FadewatchError", "UsageError", "ServerError", "Unauthorized", "NotFoundError", "Unavailable"]


class FadewatchError(Exception):
    """Base class of every error fadewatch raises."""


class UsageError(FadewatchError, ValueError):
    """The caller used the API wrongly; the message says what to fix."""


class ServerError(FadewatchError):
    """The server refused a request, or did not answer it; the message says why."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class Unauthorized(ServerError):
    """The server needs a (valid) API token."""


class NotFoundError(ServerError):
    """The server knows no such object, or it belongs to a project the token cannot read."""


class Unavailable(ServerError):
    """The server did not answer, or failed on its side; the same request may work later."""
