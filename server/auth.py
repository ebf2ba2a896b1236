"""API tokens: project-scoped bearer secrets, stored as sha256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from fadewatch.server.store.errors import Forbidden

__all__ = ["Scope", "Principal", "generate_token", "hash_token", "digests_equal", "TOKEN_PREFIX"]

Scope = Literal["read", "write"]
TOKEN_PREFIX = "fw_"


@dataclass(frozen=True)
class Principal:
    """Who is calling. `project_id is None` means local open mode: everything is allowed."""

    project_id: int | None
    project: str | None
    scope: Scope

    @property
    def is_open(self) -> bool:
        return self.project_id is None

    def can_read(self, project_id: int) -> bool:
        return self.is_open or self.project_id == project_id

    def can_write(self, project_id: int) -> bool:
        return self.can_read(project_id) and self.scope == "write"

    def require_project(self, name: str, *, write: bool) -> None:
        """Raise Forbidden unless this caller may read (or, with ``write``, change) project ``name``."""
        if not self.is_open and self.project != name:
            raise Forbidden(f"this token belongs to project {self.project!r}, not {name!r}")
        if write and self.scope != "write":
            raise Forbidden("a read token cannot change anything")


OPEN = Principal(project_id=None, project=None, scope="write")


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
