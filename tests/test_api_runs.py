"""Runs: create or resume by project + name, list, read, change status."""

from __future__ import annotations


def test_create_then_resume_returns_the_same_run(api):
    first = api.post("/runs", json={"project": "math", "name": "grpo-1", "config": {"lr": 1e-6}})
    assert first.status_code == 201
    run = first.json()
    assert run["status"] == "running" and run["config"] == {"lr": 1e-6}

    api.patch(f"/runs/{run['id']}", json={"status": "crashed"})
    again = api.post("/runs", json={"project": "math", "name": "grpo-1"})
    assert again.status_code == 200
    assert again.json()["id"] == run["id"]
    assert again.json()["status"] == "running"
    assert again.json()["config"] == {"lr": 1e-6}  # resuming without config keeps the old one


def test_same_name_in_two_projects_are_two_runs(api):
    a = api.post("/runs", json={"project": "a", "name": "r"}).json()
    b = api.post("/runs", json={"project": "b", "name": "r"}).json()
    assert a["id"] != b["id"]


def test_list_filters_by_project_and_status(api):
    ids = {}
    for project, name in [("p1", "x"), ("p1", "y"), ("p2", "z")]:
        ids[name] = api.post("/runs", json={"project": project, "name": name}).json()["id"]
    api.patch(f"/runs/{ids['y']}", json={"status": "finished"})

    names = lambda r: sorted(run["name"] for run in r.json()["runs"])  # noqa: E731
    assert names(api.get("/runs")) == ["x", "y", "z"]
    assert names(api.get("/runs", params={"project": "p1"})) == ["x", "y"]
    assert names(api.get("/runs", params={"status": "finished"})) == ["y"]
    assert names(api.get("/runs", params={"project": "p2", "status": "running"})) == ["z"]


def test_get_and_patch(api):
    run = api.post("/runs", json={"project": "p", "name": "r"}).json()
    got = api.get(f"/runs/{run['id']}")
    assert got.status_code == 200 and got.json()["name"] == "r"
    patched = api.patch(f"/runs/{run['id']}", json={"status": "failed"})
    assert patched.json()["status"] == "failed"
    assert api.get(f"/runs/{run['id']}").json()["status"] == "failed"


def test_unknown_run_is_404_and_bad_status_422(api):
    assert api.get("/runs/999999").status_code == 404
    assert api.patch("/runs/999999", json={"status": "finished"}).status_code == 404
    run = api.post("/runs", json={"project": "p", "name": "r"}).json()
    bad = api.patch(f"/runs/{run['id']}", json={"status": "exploded"})
    assert bad.status_code == 422


def test_run_names_keep_any_text(api):
    name = "<img src=x onerror=alert(1)> ' OR 1=1; DROP TABLE runs; --"
    run = api.post("/runs", json={"project": "p", "name": name}).json()
    assert api.get(f"/runs/{run['id']}").json()["name"] == name
    assert api.get("/runs").status_code == 200


def test_config_with_nan_is_stored_as_null(api):
    body = '{"project": "p", "name": "r", "config": {"a": NaN, "b": [1, Infinity]}}'
    r = api.post("/runs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201
    assert r.json()["config"] == {"a": None, "b": [1, None]}


def test_a_failed_run_keeps_what_ended_it_until_it_resumes(api):
    run = api.post("/runs", json={"project": "p", "name": "dies"}).json()
    r = api.patch(f"/runs/{run['id']}", json={"status": "failed", "error": "ValueError: reward function raised"})
    assert r.status_code == 200 and r.json()["error"] == "ValueError: reward function raised"
    assert api.get(f"/runs/{run['id']}").json()["error"] == "ValueError: reward function raised"
    assert api.patch(f"/runs/{run['id']}", json={"status": "failed", "error": "x" * 2001}).status_code == 422
    resumed = api.post("/runs", json={"project": "p", "name": "dies"}).json()
    assert resumed["status"] == "running" and resumed["error"] is None
    # A run that ends well carries no error, whatever was sent with its status.
    done = api.patch(f"/runs/{run['id']}", json={"status": "finished", "error": "ignored"}).json()
    assert done["error"] is None
