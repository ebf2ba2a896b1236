"""The ``fadewatch demo`` command's body (client/cli.py imports it only when the command runs)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from fadewatch.demo.serving import ServerUnavailable
from fadewatch.demo.session import DemoOptions, run_demo
from fadewatch.errors import UsageError

__all__ = ["run_command"]


def _wait_for_ctrl_c() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("\nStopping the server.")


def run_command(port: int, data_dir: str | None, steps: int, estimators: str, seed: int,
                exit_when_done: bool) -> None:
    import fadewatch

    names = tuple(e.strip() for e in estimators.split(",") if e.strip())
    opts = DemoOptions(port=port, data_dir=Path(data_dir) if data_dir else fadewatch.get_settings().dir,
                       steps=steps, estimators=names, seed=seed, exit_when_done=exit_when_done)
    try:
        run_demo(opts, echo=click.echo, wait=_wait_for_ctrl_c)
    except (UsageError, ServerUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.Abort() from None
