"""Domain errors raised by the repository layer, mapped to HTTP at the edge."""

__all__ = ["StoreError", "NotFound", "Forbidden", "Conflict"]


class StoreError(Exception):
    """Base of repository errors."""


class NotFound(StoreError):
    """The thing does not exist, or the caller may not know it exists."""


class Forbidden(StoreError):
    """The caller's token does not allow this."""


class Conflict(StoreError):
    """The request clashes with stored state."""
