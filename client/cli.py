"""The `fadewatch` command line."""

from __future__ import annotations

import click

from fadewatch import __version__

__all__ = ["main"]


def _server_extra():
    try:
        from fadewatch.server import cli as server_cli
    except ImportError as exc:  # the base install carries the client only
        raise click.ClickException(
            f"this command needs the server extra ({exc.name} is missing): "
            "pip install 'fadewatch[server]'"
        ) from exc
    return server_cli


def _dashboard_extra(module: str = "report"):
    import importlib

    try:
        return importlib.import_module(f"fadewatch.dashboard.{module}")
    except ImportError as exc:
        raise click.ClickException(
            f"this command needs the server extra ({exc.name} is missing): "
            "pip install 'fadewatch[server]'"
        ) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fadewatch")
def main() -> None:
    """fadewatch: live FADE diagnostics for RL post-training."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8700).")
@click.option("--db", "db_url", default=None, help="Database URL (default: SQLite under FADEWATCH_DIR).")
@click.option("--dir", "data_dir", default=None, type=click.Path(file_okay=False), help="Data directory (FADEWATCH_DIR).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--rules", "rules_file", default=None, type=click.Path(dir_okay=False),
              help="YAML file of alert rules (FADEWATCH_ALERT_RULES_FILE).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes on the one port (PostgreSQL only past 1): one per core the server may use.")
def server(host, port, db_url, data_dir, log_level, rules_file, workers) -> None:
    """Run the ingest API (and dashboard)."""
    _server_extra().run_server(host=host, port=port, db_url=db_url, data_dir=data_dir, log_level=log_level,
                               rules_file=rules_file, workers=workers)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--db", "db_url", default=None, help="Database URL (default: FADEWATCH_DATABASE_URL or the SQLite file).")
def db_upgrade(db_url) -> None:
    """Migrate the database schema to the newest version (Alembic head)."""
    _server_extra().upgrade_database(db_url)


@main.group()
def token() -> None:
    """API tokens: project-scoped, stored hashed."""


@token.command("create")
@click.option("--project", required=True, help="Project the token belongs to.")
@click.option("--scope", type=click.Choice(["write", "read"]), default="write", show_default=True)
@click.option("--name", default=None, help="A label to recognise the token by.")
@click.option("--db", "db_url", default=None, help="Database URL.")
def token_create(project, scope, name, db_url) -> None:
    """Create a token and print it once (only its hash is stored)."""
    _server_extra().create_token(project, scope, name, db_url)


@token.command("list")
@click.option("--project", default=None)
@click.option("--db", "db_url", default=None, help="Database URL.")
def token_list(project, db_url) -> None:
    """List tokens (never their secrets)."""
    _server_extra().list_tokens(project, db_url)


@token.command("revoke")
@click.argument("token_id", type=int)
@click.option("--db", "db_url", default=None, help="Database URL.")
def token_revoke(token_id, db_url) -> None:
    """Revoke a token by id; requests with it are refused from then on."""
    _server_extra().revoke_token(token_id, db_url)


@main.command()
@click.argument("run_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: run-RUN_ID.html).")
@click.option("--url", default=None, help="Server to read from (default: FADEWATCH_URL, else http://127.0.0.1:8700).")
@click.option("--token", default=None, help="API token with read access (default: FADEWATCH_TOKEN).")
def report(run_id, output, url, token) -> None:
    """Write a run's charts as one self-contained HTML file that opens without a network."""
    from fadewatch.settings import get_settings

    settings = get_settings()
    reports = _dashboard_extra()
    try:
        path = reports.write_report(url or settings.url, run_id, output or f"run-{run_id}.html",
                                    token=token or settings.token)
    except reports.ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.option("--api", "api_url", default=None,
              help="The fadewatch server whose API to read (default: FADEWATCH_URL, else http://127.0.0.1:8700).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the dashboard on.")
@click.option("--port", type=int, default=8701, show_default=True)
@click.option("--token", default=None, help="Read token for that server (default: FADEWATCH_TOKEN).")
@click.option("--refresh", type=float, default=2.0, show_default=True, help="Seconds between live updates.")
def dashboard(api_url, host, port, token, refresh) -> None:
    """Serve the dashboard alone, reading a (remote) server's API over HTTP."""
    from fadewatch.settings import get_settings

    settings = get_settings()
    url = api_url or settings.url
    click.echo(f"fadewatch dashboard on http://{host}:{port}, reading {url}")
    _dashboard_extra("serve").serve(url, host=host, port=port, token=token or settings.token,
                                    refresh_seconds=refresh)


def _demo_extra():
    try:
        from fadewatch.demo import command
    except ImportError as exc:  # torch and the server come with the demo extra
        raise click.ClickException(
            f"this command needs the demo extra ({exc.name} is missing): pip install 'fadewatch[demo]'"
        ) from exc
    return command


@main.command()
@click.option("--port", type=int, default=8700, show_default=True,
              help="Port of the server: one already running there is used, else one is started.")
@click.option("--dir", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Data directory for the SQLite database and the spools (default FADEWATCH_DIR or ~/.fadewatch).")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True, help="RL steps per estimator.")
@click.option("--estimators", default="psr,grpo,nsr,fade", show_default=True,
              help="Comma-separated advantage estimators, one run each (see fadewatch.advantages).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the policy, the prompts and the sampling.")
@click.option("--exit-when-done", is_flag=True, help="Exit after training instead of serving until Ctrl-C.")
def demo(port, data_dir, steps, estimators, seed, exit_when_done) -> None:
    """Train small RL policies on the CPU side by side and watch them live (the demo extra)."""
    _demo_extra().run_command(port, data_dir, steps, estimators, seed, exit_when_done)


from fadewatch.sync import sync_command  # noqa: E402 - client side, base install only

main.add_command(sync_command)


if __name__ == "__main__":
    main()
