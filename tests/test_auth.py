"""Tokens: hashed, project-scoped, read or write, revocable; open only on loopback with none."""

from __future__ import annotations

import hmac
import subprocess
import sys

import httpx
from sqlalchemy import select

from fadewatch.server.auth import hash_token
from fadewatch.server.db import make_engine, make_session_factory, session_scope
from fadewatch.server.models import ApiToken
from fadewatch.server.store import tokens
from tests.support.polling import wait_until


def _create(db_url, project, scope="write"):
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        secret, info = tokens.create(s, project, scope)
    engine.dispose()
    return secret, info


def _client(server, secret=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30)


def test_open_in_local_mode_until_a_token_exists(server, db_url):
    with _client(server) as anon:
        assert anon.post("/runs", json={"project": "a", "name": "r"}).status_code == 201
        _create(db_url, "a")
        r = wait_until(lambda: (x := anon.get("/runs")).status_code == 401 and x, timeout=5, what="auth on")
        assert r.headers["www-authenticate"] == "Bearer"
        assert "fadewatch token create" in r.json()["detail"]


def test_tokens_are_stored_hashed(db_url):
    secret, info = _create(db_url, "a")
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        stored = s.scalars(select(ApiToken.token_hash)).all()
    engine.dispose()
    assert secret.startswith("fw_") and len(secret) > 40
    assert secret not in stored and info.prefix == secret[:10]


def test_token_check_compares_digests_with_hmac_compare_digest(db_url, monkeypatch):
    secret, _ = _create(db_url, "a")
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda x, y: compared.append((x, y)) or real(x, y))
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        principal = tokens.authenticate(s, secret)
        assert tokens.authenticate(s, secret + "x") is None
    engine.dispose()
    assert principal.project == "a" and principal.scope == "write"
    digest = hash_token(secret).encode()
    assert compared == [(digest, digest)]  # the stored digest against the presented one, never the secret


def test_unknown_and_revoked_tokens_are_refused(server, db_url):
    secret, info = _create(db_url, "a")
    with _client(server, "fw_not-a-real-token") as bad:
        assert bad.get("/runs").status_code == 401
    # Revoking the only token would turn local mode back on, so keep another one active.
    _create(db_url, "other")
    with _client(server, secret) as good:
        assert good.get("/runs").status_code == 200
        engine = make_engine(db_url)
        with session_scope(make_session_factory(engine)) as s:
            tokens.revoke(s, info.id)
        engine.dispose()
        # Every request looks its token up: a revoked one is refused at once, not after a cache.
        refused = good.get("/runs")
        assert refused.status_code == 401 and refused.json()["detail"] == "unknown or revoked token"


def test_server_refuses_to_run_open_on_a_public_address(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "fadewatch.cli", "server", "--host", "0.0.0.0", "--db", db],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "refusing to run open" in proc.stderr


def test_token_cli_create_list_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    run = lambda *a: subprocess.run([sys.executable, "-m", "fadewatch.cli", *a], capture_output=True, text=True, timeout=60)  # noqa: E731
    created = run("token", "create", "--project", "math", "--scope", "read", "--db", db)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("fw_")
    listed = run("token", "list", "--db", db)
    assert "math" in listed.stdout and "read" in listed.stdout and secret not in listed.stdout
    assert run("token", "revoke", "1", "--db", db).returncode == 0
    assert "revoked" in run("token", "list", "--db", db).stdout
    assert run("token", "revoke", "99", "--db", db).returncode != 0
