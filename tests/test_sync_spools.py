"""`fadewatch sync`: upload spools left by offline, interrupted and killed runs."""

from __future__ import annotations

import json

import httpx
from click.testing import CliRunner

from fadewatch.cli import main
from fadewatch.spool import Spool
from fadewatch.sync import sync_dir
from tests.support.servers import free_port
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401


def _record(step: int) -> bytes:
    return json.dumps({"step": step, "scalars": {"loss": 1.0 / (step + 1)}}).encode()


def _killed_run_spool(root, steps, acked: int, status=None) -> Spool:
    """A spool as a killed process leaves it: ``acked`` records confirmed, the rest not."""
    spool = Spool.create(root / "spool", "p", "killed", {"lr": 0.1})
    for step in steps:
        spool.append(_record(step))
    if acked:
        spool.ack(spool.read(max_records=acked)[-1])
    if status:
        spool.update_meta(status=status)
    spool.close()
    return spool


def test_an_offline_run_is_uploaded_with_its_status(start_run, fake_server, tmp_path):
    run = start_run(mode="offline", dir=tmp_path)
    for step in range(150):
        run.log(step, loss=float(step))
    assert run.finish(5, status="failed")
    results = sync_dir(tmp_path, transport=fake_server.transport, sleep=lambda s: None)
    assert len(results) == 1 and results[0].ok
    assert (results[0].pending, results[0].uploaded, results[0].stored) == (150, 150, 150)
    assert fake_server.stored_steps() == list(range(150))
    assert fake_server.runs[1]["status"] == "failed"
    assert not run.spool_dir.exists()  # delivered: nothing left to sync
    assert sync_dir(tmp_path, transport=fake_server.transport) == []


def test_only_unacknowledged_records_are_sent(fake_server, tmp_path):
    _killed_run_spool(tmp_path, range(10), acked=6)
    (result,) = sync_dir(tmp_path, transport=fake_server.transport)
    assert result.ok and result.uploaded == 4
    assert fake_server.stored_steps() == [6, 7, 8, 9]
    assert fake_server.runs[1]["status"] == "running"  # a killed run's status is left alone
    assert [e["method"] for e in fake_server.log].count("PATCH") == 0


def test_steps_the_server_already_has_count_as_duplicates(fake_server, tmp_path):
    client = httpx.Client(transport=fake_server.transport, base_url="http://x/api/v1")
    client.post("/runs", json={"project": "p", "name": "killed", "config": None})
    client.post("/runs/1/steps", json={"records": [{"step": s} for s in range(5)]})
    _killed_run_spool(tmp_path, range(8), acked=0, status="finished")  # the ack marker was lost
    (result,) = sync_dir(tmp_path, transport=fake_server.transport)
    assert result.ok and (result.stored, result.duplicates) == (3, 5)
    assert fake_server.stored_steps() == list(range(8))
    assert fake_server.runs[1]["status"] == "finished"


def test_a_spool_in_use_is_skipped(start_run, fake_server, tmp_path):
    fake_server.respond = lambda req, body: httpx.Response(503)
    run = start_run(dir=tmp_path)
    run.log(0, loss=1.0)
    run.flush(0.2)
    (result,) = sync_dir(tmp_path, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    assert result.skipped and result.ok
    assert not run.finish(timeout=0.1)


def test_refused_records_fail_the_sync(fake_server, tmp_path):
    fake_server.respond = lambda req, body: (
        httpx.Response(422, json={"detail": "bad"})
        if body and any(r["step"] == 2 for r in body.get("records", ())) else None)
    spool = _killed_run_spool(tmp_path, range(4), acked=0)
    (result,) = sync_dir(tmp_path, transport=fake_server.transport)
    assert not result.ok and result.rejected == 1 and result.uploaded == 4
    assert fake_server.stored_steps() == [0, 1, 3]
    assert "refused as invalid" in result.line()
    assert (spool.path / "rejected.jsonl").exists()
    (again,) = sync_dir(tmp_path, transport=fake_server.transport)  # nothing new to send
    assert again.ok and again.uploaded == 0


def test_a_bad_token_fails_the_sync(tmp_path):
    _killed_run_spool(tmp_path, range(3), acked=0)
    refuse = httpx.MockTransport(lambda r: httpx.Response(401, json={"detail": "bad token"}))
    (result,) = sync_dir(tmp_path, transport=refuse)
    assert not result.ok and "401" in result.error


def test_cli_fails_when_the_server_is_away(tmp_path):
    spool = _killed_run_spool(tmp_path, range(3), acked=0)
    url = f"http://127.0.0.1:{free_port()}"
    out = CliRunner().invoke(main, ["sync", str(tmp_path), "--url", url, "--timeout", "0.3"])
    assert out.exit_code == 1, out.output
    assert "FAILED" in out.output and "0 of 3" in out.output
    assert Spool.open(spool.path).count_pending() == 3


def test_cli_with_nothing_to_sync(tmp_path):
    out = CliRunner().invoke(main, ["sync", str(tmp_path)])
    assert out.exit_code == 0 and "no spooled runs" in out.output
