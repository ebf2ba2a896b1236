"""The repository layer: every SQL statement of the server lives here.

ORM objects never leave it; callers get pydantic models or plain values.
"""

from fadewatch.server.store.errors import NotFound, Forbidden
from fadewatch.server.store import reads, runs, samples, steps, tokens

__all__ = ["NotFound", "Forbidden", "reads", "runs", "samples", "steps", "tokens"]
