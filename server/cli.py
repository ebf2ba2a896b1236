"""What the `fadewatch server`, `db` and `token` commands do."""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from fadewatch.server.db import is_sqlite, make_engine, make_session_factory, session_scope
from fadewatch.server.migrate import SchemaOutOfDate, current_revision, head_revision, upgrade
from fadewatch.server.settings import ServerSettings, is_loopback_host
from fadewatch.server.store import tokens

__all__ = ["run_server", "upgrade_database", "create_token", "list_tokens", "revoke_token", "build_settings"]


def build_settings(**overrides) -> ServerSettings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return ServerSettings(**given)
    except ValidationError as exc:  # a bad FADEWATCH_* variable: say which, without a traceback
        lines = [(f"FADEWATCH_{str(e['loc'][0]).upper()}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                 for e in exc.errors()]
        raise click.ClickException("invalid server settings: " + "; ".join(lines)) from None


def _settings_for(db_url: str | None) -> ServerSettings:
    return build_settings(database_url=db_url)


def run_server(host, port, db_url, data_dir, log_level: str = "info", rules_file=None, workers: int = 1) -> None:
    import uvicorn

    from fadewatch.server.alerts.evaluation.rulefile import RulesFileError
    from fadewatch.server.app import alert_context, create_app, prepare_database

    settings = build_settings(host=host, port=port, database_url=db_url, dir=data_dir,
                              alert_rules_file=rules_file)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        context = alert_context(settings)
    except RulesFileError as exc:
        raise click.ClickException(f"alert rules: {exc}") from exc
    try:
        database = prepare_database(settings)
    except SchemaOutOfDate as exc:
        raise click.ClickException(str(exc)) from exc
    except OperationalError as exc:
        raise _unreachable(settings.resolved_database_url(), exc) from None
    with session_scope(database.factory) as session:
        has_tokens = tokens.any_active(session)
    loopback = is_loopback_host(settings.host)
    if not has_tokens and not loopback:
        raise click.ClickException(
            f"refusing to run open on {settings.host}: create a token first with "
            "`fadewatch token create --project P` (or bind to 127.0.0.1)"
        )
    url = settings.resolved_database_url()
    if workers > 1 and is_sqlite(url):
        raise click.ClickException("--workers above 1 needs PostgreSQL: SQLite takes one writer at a time, "
                                   "which one process already queues")
    click.echo(f"fadewatch server on http://{settings.host}:{settings.port}  database: {_safe(url)}")
    if not has_tokens:
        click.echo("local mode: no API token exists, so this loopback-only server accepts every request")
    if settings.alert_rules_file:
        click.echo(f"alert rules: {len(context.file_rules)} from {settings.alert_rules_file}")
    if workers > 1:
        database.engine.dispose()
        _serve_processes(settings, workers, log_level)
        return
    app = create_app(settings, database, context=context)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False)


def _serve_processes(settings: ServerSettings, workers: int, log_level: str) -> None:
    """`workers` processes sharing the port, each building its app from the environment.

    One process runs Python on one core at a time (its GIL); parsing, validation and the
    alert rules are Python, so a server with more cores ingests more with more processes.
    Everything they share lives in PostgreSQL (steps, alert state, the outbox they deliver
    from); what each keeps for itself is a cache or a per-process limit (the rate limit).
    """
    import os

    import uvicorn

    os.environ.update({
        "FADEWATCH_HOST": settings.host, "FADEWATCH_PORT": str(settings.port),
        "FADEWATCH_DIR": str(settings.dir), "FADEWATCH_DATABASE_URL": settings.resolved_database_url(),
    })
    if settings.alert_rules_file:
        os.environ["FADEWATCH_ALERT_RULES_FILE"] = str(settings.alert_rules_file)
    # A worker that misses a health check is killed and replaced; starting one (the imports,
    # the app) takes seconds on a busy machine, past uvicorn's 5 s default.
    uvicorn.run("fadewatch.server.app:create_app", factory=True, workers=workers, host=settings.host,
                port=settings.port, log_level=log_level, access_log=False, timeout_worker_healthcheck=60)


def _unreachable(url: str, exc: OperationalError) -> click.ClickException:
    """One clear line, with the URL's password masked (the driver's own message has none)."""
    reason = " ".join(str(exc.orig).split())
    return click.ClickException(f"cannot reach the database at {_safe(url)}: {reason}")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def upgrade_database(db_url: str | None) -> None:
    settings = _settings_for(db_url)
    url = settings.resolved_database_url()
    engine = make_engine(url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    click.echo(f"{_safe(url)}: schema {before or 'empty'} -> {after} (head {head_revision()})")


def _session_for(db_url: str | None):
    settings = _settings_for(db_url)
    url = settings.resolved_database_url()
    engine = make_engine(url)
    try:
        if is_sqlite(url):
            upgrade(engine)
        elif current_revision(engine) != head_revision():
            raise click.ClickException("database schema is not current: run `fadewatch db upgrade --db URL` first")
    except OperationalError as exc:
        raise _unreachable(url, exc) from None
    return session_scope(make_session_factory(engine))


def create_token(project: str, scope: str, name: str | None, db_url: str | None) -> None:
    with _session_for(db_url) as session:
        secret, info = tokens.create(session, project, scope, name)
    click.echo(secret)
    click.echo(f"token {info.id} for project {info.project!r}, scope {info.scope}: shown once, store it now", err=True)


def list_tokens(project: str | None, db_url: str | None) -> None:
    with _session_for(db_url) as session:
        rows = tokens.list_tokens(session, project)
    for t in rows:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        click.echo(f"{t.id}\t{t.project}\t{t.scope}\t{t.prefix}…\t{t.name or ''}\t{state}")
    if not rows:
        click.echo("no tokens", err=True)


def revoke_token(token_id: int, db_url: str | None) -> None:
    with _session_for(db_url) as session:
        try:
            info = tokens.revoke(session, token_id)
        except Exception as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"token {info.id} of project {info.project!r} revoked")
    sys.stdout.flush()
