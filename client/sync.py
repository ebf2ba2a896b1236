"""``fadewatch sync [DIR]``: upload the spools that hold records the server has not stored.

Offline runs, runs whose server was away when they finished, and runs whose process was
killed all leave a spool. Sync creates (or resumes) each run on the server, sends the
records after the ack marker in order, sets the final status the run recorded, and deletes
the spool once everything is stored. The server ignores steps it already has, so running
sync twice, or on a run that was partly delivered, stores every step exactly once.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fadewatch.api_client import ApiClient, Reply
from fadewatch.delivery import Backoff, deliver
from fadewatch.settings import get_settings
from fadewatch.spool import Spool, find_spools

__all__ = ["SyncResult", "sync_command", "sync_dir", "sync_spool"]


@dataclasses.dataclass
class SyncResult:
    """What happened to one spool."""

    path: Path
    project: str = "?"
    name: str = "?"
    pending: int = 0
    uploaded: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: str | None = None  # why the spool was left alone (in use by a live process)
    error: str | None = None  # why it could not be uploaded completely

    @property
    def ok(self) -> bool:
        return self.error is None and self.rejected == 0

    def line(self) -> str:
        head = f"{self.project}/{self.name}"
        if self.skipped:
            return f"{head}: skipped, {self.skipped}"
        text = f"{head}: {self.uploaded} of {self.pending} record(s) uploaded"
        if self.uploaded:
            text += f" ({self.stored} stored, {self.duplicates} already there)"
        if self.rejected:
            text += f", {self.rejected} refused as invalid (kept in {self.path / 'rejected.jsonl'})"
        if self.error:
            text += f"; FAILED: {self.error}"
        return text


class _Gave(Exception):
    """Stop syncing this spool."""


def _call(fn: Callable[[], Reply], backoff: Backoff, deadline: float, sleep: Callable[[float], None]) -> Reply:
    """Repeat a request while the answer is retriable and the deadline allows."""
    while True:
        reply = fn()
        if reply.kind != "retry":
            return reply
        delay = backoff.next_delay(reply.server_delay)
        if time.monotonic() + delay > deadline:
            raise _Gave(f"server unavailable: {reply.error}")
        sleep(delay)


def _create(api: ApiClient, spool: Spool, backoff: Backoff, deadline: float, sleep) -> int:
    meta = spool.meta
    reply = _call(lambda: api.create_run(meta["project"], meta["name"], meta.get("config")), backoff, deadline, sleep)
    if reply.kind != "ok" or not isinstance(reply.body, dict) or "id" not in reply.body:
        raise _Gave(reply.error or "the server did not return a run id")
    return int(reply.body["id"])


def sync_spool(path: Path, api: ApiClient, *, timeout: float = 30.0, on_progress: Callable[[int], None] | None = None,
               sleep: Callable[[float], None] = time.sleep, remove: bool = True) -> SyncResult:
    """Upload one spool; a server failing for ``timeout`` seconds in a row stops it."""
    result = SyncResult(Path(path))
    try:
        spool = Spool.open(path)
    except (OSError, ValueError) as exc:
        result.error = f"unreadable spool: {exc}"
        return result
    meta = spool.meta
    result.project, result.name = str(meta.get("project")), str(meta.get("name"))
    if not spool.try_lock():
        result.skipped = "in use by a running process (it delivers its records itself)"
        return result
    try:
        result.pending = spool.count_pending()
        status = meta.get("status")
        needs_status = bool(status) and not meta.get("status_sent")
        if result.pending or needs_status:
            _upload(spool, api, result, timeout, on_progress or (lambda n: None), sleep, status if needs_status else None)
    except _Gave as exc:
        result.error = str(exc)
    finally:
        spool.close()
    if remove and result.ok and not spool.rejected_count:
        spool.remove()
    return result


def _upload(spool: Spool, api: ApiClient, result: SyncResult, timeout: float,
            on_progress: Callable[[int], None], sleep, status: str | None) -> None:
    backoff = Backoff(base=0.5, cap=5.0)
    deadline = time.monotonic() + timeout
    run_id = _create(api, spool, backoff, deadline, sleep)
    batch = spool.read(100)
    while batch:
        outcome = deliver(api, run_id, batch, spool)
        result.uploaded += outcome.done
        result.stored += outcome.stored
        result.duplicates += outcome.duplicates
        result.rejected += outcome.rejected
        on_progress(outcome.done)
        batch = batch[outcome.done:]
        stop = outcome.stop
        if outcome.done:
            backoff.reset()
            deadline = time.monotonic() + timeout
        if stop is None:
            batch = batch or spool.read(100)
        elif stop.kind == "not_found":
            run_id = _create(api, spool, backoff, deadline, sleep)
        elif stop.kind == "retry":
            delay = backoff.next_delay(stop.server_delay)
            if time.monotonic() + delay > deadline:
                raise _Gave(f"server unavailable: {stop.error}")
            sleep(delay)
        else:
            raise _Gave(stop.error or f"HTTP {stop.status}")
    if status:
        reply = _call(lambda: api.patch_run(run_id, status, spool.meta.get("error")), backoff, deadline, sleep)
        if reply.kind == "not_found":
            run_id = _create(api, spool, backoff, deadline, sleep)
            reply = _call(lambda: api.patch_run(run_id, status, spool.meta.get("error")), backoff, deadline, sleep)
        if reply.kind != "ok":
            raise _Gave(f"could not set the status {status!r}: {reply.error}")
        spool.update_meta(status_sent=True)


def sync_dir(root: Path, *, url: str | None = None, token: str | None = None, transport: Any = None,
             timeout: float = 30.0, progress: bool | None = None, sleep: Callable[[float], None] = time.sleep,
             echo: Callable[[str], None] | None = None) -> list[SyncResult]:
    """Upload every spool under ``root``; one result per spool found."""
    from tqdm import tqdm

    settings = get_settings().with_overrides(url=url, token=token)
    paths = find_spools(Path(root))
    if not paths:
        return []
    totals = []
    for p in paths:
        try:
            totals.append(Spool.open(p).count_pending())
        except (OSError, ValueError):
            totals.append(0)
    api = ApiClient(settings.url, settings.token, transport=transport)
    results = []
    bar = tqdm(total=sum(totals), unit="record", desc="fadewatch sync", file=sys.stderr,
               disable=(not sys.stderr.isatty()) if progress is None else not progress)
    try:
        for path in paths:
            result = sync_spool(path, api, timeout=timeout, on_progress=bar.update, sleep=sleep)
            results.append(result)
            if echo:
                bar.clear()
                echo(result.line())
    finally:
        bar.close()
        api.close()
    return results


@click.command("sync")
@click.argument("directory", metavar="[DIR]", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--url", default=None, help="Server URL (default FADEWATCH_URL).")
@click.option("--token", default=None, help="API token (default FADEWATCH_TOKEN).")
@click.option("--timeout", default=30.0, show_default=True, help="Give a spool up after the server failed this many seconds in a row.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def sync_command(directory: Path | None, url: str | None, token: str | None, timeout: float, progress: bool | None) -> None:
    """Upload spooled runs under DIR (default FADEWATCH_DIR).

    Offline runs, runs whose server was away when they ended and runs whose process was
    killed keep their records in a spool; this sends them and exits non-zero if any record
    could not be uploaded.
    """
    root = directory or get_settings().dir
    results = sync_dir(root, url=url, token=token, timeout=timeout, progress=progress, echo=click.echo)
    if not results:
        click.echo(f"no spooled runs under {root}")
        return
    failed = [r for r in results if not r.ok]
    uploaded = sum(r.uploaded for r in results)
    click.echo(f"synced {len(results) - len(failed)} of {len(results)} run(s), {uploaded} record(s) uploaded")
    if failed:
        raise SystemExit(1)
