"""Sampled completions: stored with their step, read back newest first, as plain text."""

from __future__ import annotations


def _run(api, name="samples"):
    return api.post("/runs", json={"project": "p", "name": name}).json()["id"]


def _sample(step: int, i: int) -> dict:
    return {"text": f"<b>step {step} #{i}</b>", "group": f"g{i % 2}", "reward": float(i % 2),
            "advantage": 0.5 - i}


def test_samples_newest_first_with_limit_and_step_window(api):
    run_id = _run(api)
    records = [{"step": s, "scalars": {"x": 1.0}} for s in range(10)]
    for s in (2, 5, 7):
        records[s]["samples"] = [_sample(s, i) for i in range(3)]
    assert api.post(f"/runs/{run_id}/steps", json={"records": records}).status_code == 200

    body = api.get(f"/runs/{run_id}/samples", params={"limit": 4}).json()
    assert body["run_id"] == run_id
    assert [(s["step"], s["text"]) for s in body["samples"]] == [
        (7, "<b>step 7 #0</b>"), (7, "<b>step 7 #1</b>"), (7, "<b>step 7 #2</b>"), (5, "<b>step 5 #0</b>")]
    assert body["samples"][1] == {"step": 7, "text": "<b>step 7 #1</b>", "group": "g1", "reward": 1.0,
                                  "advantage": -0.5}

    before = api.get(f"/runs/{run_id}/samples", params={"max_step": 6, "limit": 100}).json()["samples"]
    assert [s["step"] for s in before] == [5, 5, 5, 2, 2, 2]
    window = api.get(f"/runs/{run_id}/samples", params={"min_step": 3, "max_step": 6}).json()["samples"]
    assert {s["step"] for s in window} == {5}


def test_samples_of_a_run_without_any_and_bad_parameters(api):
    run_id = _run(api, "none")
    api.post(f"/runs/{run_id}/steps", json={"records": [{"step": 0, "scalars": {"x": 1.0}}]})
    assert api.get(f"/runs/{run_id}/samples").json() == {"run_id": run_id, "samples": []}
    assert api.get(f"/runs/{run_id}/samples", params={"limit": 0}).status_code == 422
    assert api.get(f"/runs/{run_id}/samples", params={"limit": 501}).status_code == 422
    assert api.get(f"/runs/{run_id}/samples", params={"max_step": -1}).status_code == 422
    assert api.get("/runs/999999/samples").status_code == 404
