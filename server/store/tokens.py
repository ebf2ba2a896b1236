"""Creating, checking and revoking API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from fadewatch.server.auth import Principal, Scope, digests_equal, generate_token, hash_token
from fadewatch.server.models import ApiToken, Project, utcnow
from fadewatch.server.store.errors import NotFound
from fadewatch.server.store.runs import get_or_create_project

__all__ = ["TokenInfo", "create", "authenticate", "any_active", "list_tokens", "revoke"]


@dataclass(frozen=True)
class TokenInfo:
    id: int
    project: str
    scope: str
    prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def create(session: Session, project: str, scope: Scope, name: str | None = None) -> tuple[str, TokenInfo]:
    """Create a token; the secret is returned once and only its hash is stored."""
    proj = get_or_create_project(session, project)
    secret = generate_token()
    row = ApiToken(
        project_id=proj.id,
        name=name,
        scope=scope,
        token_hash=hash_token(secret),
        prefix=secret[:10],
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return secret, _info(row, proj.name)


def any_active(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(ApiToken.revoked_at.is_(None)))))


def authenticate(session: Session, secret: str) -> Principal | None:
    digest = hash_token(secret)
    row = session.execute(
        select(ApiToken, Project.name)
        .join(Project, Project.id == ApiToken.project_id)
        .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    token, project_name = row
    # The lookup is by digest; the constant-time compare guards against a lenient collation.
    if not digests_equal(token.token_hash, digest):
        return None
    return Principal(project_id=token.project_id, project=project_name, scope=token.scope)


def list_tokens(session: Session, project: str | None = None) -> list[TokenInfo]:
    query = select(ApiToken, Project.name).join(Project, Project.id == ApiToken.project_id)
    if project is not None:
        query = query.where(Project.name == project)
    return [_info(t, p) for t, p in session.execute(query.order_by(ApiToken.id))]


def revoke(session: Session, token_id: int) -> TokenInfo:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    name = session.scalar(select(Project.name).where(Project.id == row.project_id))
    return _info(row, name)


def _info(row: ApiToken, project: str) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        project=project,
        scope=row.scope,
        prefix=row.prefix,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
