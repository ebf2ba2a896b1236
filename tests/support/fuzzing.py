"""What the API fuzzers share: the checks, seed data, and steering of ids towards stored rows.

Random run ids and project names almost never name a stored row, so most generated
requests would stop at 404 or 403. The hook below offers, for each generated set of path
parameters, the same set with the run id and project of seeded data instead, so the
deeper code (reads, ingest into an existing run, rules and channels of a real project)
is reached as often as the error paths.
"""

from __future__ import annotations

import os

import httpx
from hypothesis import strategies as st
from schemathesis import checks

from tests.support.records import batch

__all__ = ["CHECKS", "PROJECT", "seed_run", "steer_path_parameters"]

# No 5xx, and every answer's status code, content type and body as the OpenAPI documents them.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
PROJECT = "fuzz"
# The bench's schemathesis CLI run reads its targets from here (see bench/fuzz.py).
RUN_IDS_ENV = "FADEWATCH_FUZZ_RUN_IDS"
PROJECT_ENV = "FADEWATCH_FUZZ_PROJECT"


def seed_run(base_url: str, headers: dict[str, str] | None = None, project: str = PROJECT) -> int:
    """A run with scalars, histograms and samples in `project`, so reads have data to reduce."""
    with httpx.Client(base_url=f"{base_url}/api/v1", headers=headers or {}, timeout=30) as api:
        run = api.post("/runs", json={"project": project, "name": "seeded", "config": {"lr": 1e-6}})
        run.raise_for_status()
        run_id = run.json()["id"]
        records = batch(range(40), histograms=2)["records"]
        for r in records[::5]:
            r["samples"] = [{"text": f"completion at {r['step']}", "reward": 1.0, "group": 0}]
        for r in records[2::5]:
            r["rollouts"] = [{"group": f"p{k}", "prompt": f"prompt {k}", "solve_rate": 0.5, "completions": [
                {"text": f"answer {i} at {r['step']}", "reward": float(i % 2), "advantage": i - 0.5, "length": 5,
                 "entropy": 0.7} for i in range(2)]} for k in range(2)]
        api.post(f"/runs/{run_id}/steps", json={"records": records}).raise_for_status()
    return run_id


def steer_path_parameters(path_parameters: dict, project: str, run_ids: list[int]) -> st.SearchStrategy:
    """The generated parameters, or the same with a seeded run id and project."""
    if not path_parameters:
        return st.just(path_parameters)
    steered = dict(path_parameters)
    if "project" in steered:
        steered["project"] = project
    if "run_id" in steered and run_ids:
        return st.sampled_from(run_ids).flatmap(
            lambda run_id: st.sampled_from([path_parameters, {**steered, "run_id": run_id}]))
    return st.sampled_from([path_parameters, steered])


def steer_from_environment(path_parameters: dict) -> st.SearchStrategy:
    run_ids = [int(x) for x in os.environ.get(RUN_IDS_ENV, "").split(",") if x]
    return steer_path_parameters(path_parameters, os.environ.get(PROJECT_ENV, PROJECT), run_ids)
