"""Migration 0006: steps stored as JSON read back the same once packed, and convert back exactly."""

from __future__ import annotations

import contextlib
import random

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.support.servers import ThreadedServer
from tests.test_migrations import _fresh_database

STEPS = 700


def _records() -> list[dict]:
    rng = random.Random(3)
    out = []
    for s in range(STEPS):
        scalars = {"x": rng.gauss(0, 1), "y": float(s), "small": rng.random() * 1e-300, "neg0": -0.0}
        if s % 7 == 0:
            scalars["sparse"] = float(s % 13)
        if s % 11 == 0:
            scalars["x"] = None
        flagged = {"nonfinite": ["y"]} if s % 17 == 0 else {}
        if flagged:
            scalars["y"] = None  # as the hook sends a non-finite value
        counts = [float((i * 7 + s) % 5) for i in range(6)]
        h = {"lo": -3.0, "hi": 3.0, "counts": counts, "underflow": float(s % 2), "sum": 0.5 * (s % 9), "min": -3.5,
             "max": 2.5, "quantiles": {"0.05": -2.0, "0.5": None if s % 5 == 0 else 0.25, "0.95": 2.0}}
        edges = [0.0, 1.0, 2.0, 4.0] if s < 400 else [0.0, 2.0, 4.0, 8.0]  # bins change on a block boundary
        e = {"edges": edges, "counts": [float(s % 3), 1e6 * (s % 4), 0.125], "labels": ["a", "b", "c"],
             "sum_sq": 2.0, "sum": 1.5}
        out.append({"step": s, "time": 1_700_000_000.0 + s, "scalars": scalars,
                    "histograms": {"h": h, **({"e": e} if s % 3 else {})}, **flagged})
    return out


def _stored_rows(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Rows exactly as the server stored them up to 0005."""
    from fadewatch.server.schemas import StepRecord

    steps, hists = [], []
    for raw in records:
        r = StepRecord.model_validate(raw)
        steps.append({"step": r.step, "time": r.time, "scalars": orjson.dumps(r.scalars).decode(),
                      "nonfinite": None if r.nonfinite is None else orjson.dumps(r.nonfinite).decode()})
        hists += [{"name": n, "step": r.step, "data": orjson.dumps(h.model_dump(exclude_none=True)).decode()}
                  for n, h in r.histograms.items()]
    return steps, hists


def _raw(url: str) -> dict:
    from fadewatch.server.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        def rows(sql):
            return [tuple(orjson.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in row)
                    for row in conn.execute(text(sql))]
        out = {
            "steps": rows("SELECT step, time, CAST(scalars AS TEXT), CAST(nonfinite AS TEXT) FROM steps ORDER BY step"),
            "histograms": rows("SELECT name, step, CAST(data AS TEXT) FROM histograms ORDER BY name, step"),
            "scalar_blocks": [(lv, b, bytes(d)) for lv, b, d in conn.execute(
                text("SELECT level, block, data FROM scalar_blocks ORDER BY level, block"))],
            "histogram_blocks": rows("SELECT name, level, block, data FROM histogram_blocks ORDER BY name, level, block"),
        }
    engine.dispose()
    return out


@contextlib.contextmanager
def _api(url: str, tmp_path):
    from fadewatch.server.app import create_app, prepare_database
    from fadewatch.server.settings import ServerSettings

    settings = ServerSettings(dir=tmp_path, database_url=url)
    db = prepare_database(settings)
    server = ThreadedServer(create_app(settings, db)).start()
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client:
            yield client
    finally:
        server.stop()
        db.engine.dispose()


def _answers(api, run_id: int) -> list:
    out = [api.get(f"/runs/{run_id}/keys").json()]
    for params in ({"max_points": 5000}, {"max_points": 20}, {"max_points": 30, "min_step": 33, "max_step": 650}):
        out.append(api.get(f"/runs/{run_id}/series", params={"keys": "x,y,small,neg0,sparse", **params}).json())
    for params in ({"max_steps": 5000}, {"max_steps": 20}, {"max_steps": 25, "min_step": 7, "max_step": 690}):
        for name in ("h", "e", "h,e"):
            out.append(api.get(f"/runs/{run_id}/histograms", params={"name": name, **params}).json())
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_steps_stored_before_0006_read_back_the_same_and_convert_back_exactly(backend, tmp_path, request):
    from alembic import command

    from fadewatch.server.db import make_engine
    from fadewatch.server.migrate import alembic_config

    records = _records()
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command.upgrade(alembic_config(fresh_url), "head")
    with _api(fresh_url, tmp_path) as api:
        run_id = api.post("/runs", json={"project": "p", "name": "r"}).json()["id"]
        for i in range(0, STEPS, 100):
            assert api.post(f"/runs/{run_id}/steps", json={"records": records[i:i + 100]}).status_code == 200
        expected = _answers(api, run_id)

    url, drop = _fresh_database(backend, tmp_path, request)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0002")  # steps and histograms as JSON, blocks built by 0003
        steps, hists = _stored_rows(records)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO runs (id, project_id, name, status, created_at, updated_at, step_count, "
                              "last_step, summary) VALUES (1, 1, 'r', 'running', CURRENT_TIMESTAMP, "
                              "CURRENT_TIMESTAMP, :n, :last, :summary)"),
                         {"n": STEPS, "last": STEPS - 1, "summary": steps[-1]["scalars"]})
            conn.execute(text("INSERT INTO steps (run_id, step, time, scalars, nonfinite) "
                              "VALUES (1, :step, :time, :scalars, :nonfinite)"), steps)
            conn.execute(text("INSERT INTO histograms (run_id, name, step, data) VALUES (1, :name, :step, :data)"),
                         hists)
        engine.dispose()
        command.upgrade(cfg, "0005")
        stored = _raw(url)
        command.upgrade(cfg, "head")
        with _api(url, tmp_path) as api:
            assert _answers(api, 1) == expected
        command.downgrade(cfg, "0005")
        assert _raw(url) == stored
        command.upgrade(cfg, "head")
        with _api(url, tmp_path) as api:
            assert _answers(api, 1) == expected
    finally:
        drop()
