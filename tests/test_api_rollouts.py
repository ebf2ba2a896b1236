"""GET /runs/{id}/rollouts: whole groups, filters, text search, paging, and the wire's limits."""

from __future__ import annotations

from tests.support.rollouts import GSM_PROMPTS, rollout_group, rollout_record

ADV = [1.2, -0.8, 0.4, -0.8]  # a mixed group: positive and negative advantages
HOSTILE = "<script>alert('x')</script> 50% of_it \"quoted\" * NEAR( Ünïcødé ‮ 𝔘"


def _run(api, name: str) -> int:
    return api.post("/runs", json={"project": "p", "name": name}).json()["id"]


def _post(api, run_id: int, records: list[dict]) -> None:
    r = api.post(f"/runs/{run_id}/steps", json={"records": records})
    assert r.status_code == 200, r.text


def _read(api, run_id: int, **params) -> dict:
    r = api.get(f"/runs/{run_id}/rollouts", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _groups(body: dict) -> list[tuple[int, str, list[int]]]:
    """(step, group, indices) per group, in the answer's order: each group's rollouts must be contiguous."""
    out: list[tuple[int, str, list[int]]] = []
    for r in body["rollouts"]:
        if out and out[-1][:2] == (r["step"], r["group"]):
            out[-1][2].append(r["index"])
        else:
            assert all(g[:2] != (r["step"], r["group"]) for g in out), "a group split in two"
            out.append((r["step"], r["group"], [r["index"]]))
    return out


def _seed(api, name="roll") -> int:
    run_id = _run(api, name)
    records = []
    for step in range(6):
        groups = [rollout_group(f"s{step}g{k}", GSM_PROMPTS[k], ADV if k % 2 == 0 else [0.0] * 4,
                                rewards=None if k % 2 == 0 else [float(k == 3)] * 4) for k in range(4)]
        records.append(rollout_record(step, groups))
    records[4]["rollouts"][0]["completions"][1]["text"] = HOSTILE
    _post(api, run_id, records)
    return run_id


def test_any_step_gives_whole_groups_with_both_signs_and_pages_never_split_them(api):
    run_id = _seed(api)
    body = _read(api, run_id, step=3)
    assert [g for g in _groups(body)] == [(3, f"s3g{k}", [0, 1, 2, 3]) for k in range(4)]
    first = body["rollouts"][0]
    assert {r["sign"] for r in body["rollouts"][:4]} == {"pos", "neg"}
    assert first["prompt"] == GSM_PROMPTS[0] and first["completion"] == "s3g0 answer 0"
    assert (first["reward"], first["advantage"], first["length"], first["entropy"]) == (1.0, 1.2, 10, 0.5)
    assert first["solve_rate"] == 0.5 and first["group_size"] == 4

    seen, cursor, pages = [], None, 0
    while True:
        page = _read(api, run_id, limit=6, cursor=cursor) if cursor else _read(api, run_id, limit=6)
        groups = _groups(page)
        assert page["groups"] == len(groups) == 1 and len(page["rollouts"]) == 4  # 4 + 4 > 6
        seen += [g[:2] for g in groups]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(s, f"s{s}g{k}") for s in range(5, -1, -1) for k in range(4)] and pages == 24
    assert _groups(_read(api, run_id, limit=2, order="asc"))[0] == (0, "s0g0", [0, 1, 2, 3])  # alone, whole

    steps = api.get(f"/runs/{run_id}/rollouts/steps").json()
    assert steps == {"run_id": run_id, "steps": [0, 1, 2, 3, 4, 5], "total": 6, "truncated": False}
    window = api.get(f"/runs/{run_id}/rollouts/steps", params={"limit": 2, "min_step": 3}).json()
    assert (window["steps"], window["total"], window["truncated"]) == ([3, 4], 3, True)
    last = api.get(f"/runs/{run_id}/rollouts/steps", params={"limit": 1, "max_step": 4, "order": "desc"}).json()
    assert last["steps"] == [4]


def test_filters_pick_groups_and_the_rollouts_shown(api):
    run_id = _seed(api, "filters")
    neg = _read(api, run_id, step=2, sign="neg")
    assert [(g[1], g[2]) for g in _groups(neg)] == [("s2g0", [1, 3]), ("s2g2", [1, 3])]
    assert all(r["advantage"] < 0 for r in neg["rollouts"])
    zero = _read(api, run_id, step=2, sign="zero")
    assert [g[1] for g in _groups(zero)] == ["s2g1", "s2g3"]
    # The advantage heatmap's bin [0.8, 1.6) and the difficulty heatmap's bins.
    assert [(g[1], g[2]) for g in _groups(_read(api, run_id, step=2, advantage="[0.8,1.6)"))] == [
        ("s2g0", [0]), ("s2g2", [0])]
    assert [g[1] for g in _groups(_read(api, run_id, step=2, difficulty="(0.4,0.5]"))] == ["s2g0", "s2g2"]
    assert [g[1] for g in _groups(_read(api, run_id, step=2, difficulty="1"))] == ["s2g3"]
    assert [g[1] for g in _groups(_read(api, run_id, step=2, difficulty="0"))] == ["s2g1"]
    assert [r["index"] for r in _read(api, run_id, step=2, group="s2g0", min_length=20, max_length=30)["rollouts"]] == [1, 2]
    assert {r["reward"] for r in _read(api, run_id, step=2, min_reward=0.5)["rollouts"]} == {1.0}
    window = _read(api, run_id, min_step=1, max_step=2, group="s1g0")
    assert [g[:2] for g in _groups(window)] == [(1, "s1g0")]
    # The same prompt over training: its groups at every step, oldest first.
    pid = _read(api, run_id, step=0)["rollouts"][0]["prompt_id"]
    over = _read(api, run_id, prompt_id=pid, order="asc", limit=1000)
    assert [g[:2] for g in _groups(over)] == [(s, f"s{s}g0") for s in range(6)]


def test_text_search_returns_only_matching_rollouts(api):
    run_id = _seed(api, "search")
    hits = _read(api, run_id, q="s3g2 ANSWER 1")["rollouts"]
    assert [(r["step"], r["group"], r["index"]) for r in hits] == [(3, "s3g2", 1)]
    for q in ("<script>", "50% OF_it", '"quoted" *', "NEAR(", "Ünïcødé", "𝔘"):
        found = _read(api, run_id, q=q)["rollouts"]
        assert [(r["step"], r["index"]) for r in found] == [(4, 1)], q
        assert found[0]["completion"] == HOSTILE
    assert _read(api, run_id, q="50%_")["rollouts"] == []  # % and _ are text, not wildcards
    assert _read(api, run_id, q="nowhere to be found")["rollouts"] == []
    # A prompt that matches brings its whole group; short queries (under 3 characters) work too.
    prompt = _read(api, run_id, q="spider", step=5)
    assert _groups(prompt) == [(5, "s5g3", [0, 1, 2, 3])]
    assert [g[1] for g in _groups(_read(api, run_id, q="90", step=5))] == ["s5g1"]


def test_earlier_samples_are_rollouts_and_the_wire_is_checked(api):
    run_id = _run(api, "wire")
    legacy = {"step": 0, "samples": [{"text": "old a", "group": 7, "reward": 1.0, "advantage": 0.5},
                                     {"text": "old b", "group": 7, "reward": 0.0, "advantage": -0.5}]}
    nul = rollout_record(1, [rollout_group("g", "bad\x00prompt", [1.0, -1.0], texts=["a\x00b", "c"])])
    _post(api, run_id, [legacy, nul])
    old = _read(api, run_id, step=0)["rollouts"]
    assert [(r["group"], r["completion"], r["prompt"], r["sign"]) for r in old] == [
        ("7", "old a", None, "pos"), ("7", "old b", None, "neg")]
    new = _read(api, run_id, step=1)["rollouts"]
    assert new[0]["prompt"] == "bad\ufffdprompt" and new[0]["completion"] == "a\ufffdb"

    def refused(record: dict, status: int = 422) -> None:
        r = api.post(f"/runs/{run_id}/steps", json={"records": [record]})
        assert r.status_code == status, r.text
    twice = rollout_group("same", None, [1.0])
    refused(rollout_record(9, [twice, twice]))
    refused(rollout_record(9, [rollout_group("g", None, [1.0], texts=["x" * 40_000])]))
    refused(rollout_record(9, [{"group": "g", "completions": []}]))
    refused(rollout_record(9, [rollout_group("g", None, [1.0], solve_rate=1.5)]))
    detail = rollout_group("g", None, [1.0])
    detail["completions"][0]["tokens"] = {"text": ["a", "b"], "entropy": [0.1]}
    refused(rollout_record(9, [detail]))
    big = [rollout_group(f"g{k}", None, [1.0] * 8, texts=["y" * 30_000] * 8) for k in range(5)]
    refused(rollout_record(9, big), 413)
    for params in ({"difficulty": "(0.5"}, {"advantage": "[2,1]"}, {"cursor": "nonsense"}, {"limit": 0},
                   {"sign": "up"}, {"min_reward": "nan"}):
        r = api.get(f"/runs/{run_id}/rollouts", params=params)
        assert r.status_code == 422, (params, r.text)
    assert api.get("/runs/999999/rollouts").status_code == 404


def test_search_over_many_steps_finds_rare_and_common_text(api):
    run_id = _run(api, "many")
    records = [rollout_record(s, [rollout_group("g", f"prompt {s}", [1.0, -1.0],
                                                texts=[f"common words {s}", f"more common words {s}"])])
               for s in range(80)]
    records[3]["rollouts"][0]["completions"][1]["text"] = "a rare needle"
    _post(api, run_id, records)
    rare = _read(api, run_id, q="RARE NEEDLE")
    assert [(r["step"], r["index"]) for r in rare["rollouts"]] == [(3, 1)] and rare["next_cursor"] is None
    seen, cursor = [], None
    while True:
        page = _read(api, run_id, q="common words", limit=3, **({"cursor": cursor} if cursor else {}))
        assert 1 <= len(page["rollouts"]) <= 3
        seen += [(r["step"], r["index"]) for r in page["rollouts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(s, i) for s in range(79, -1, -1) for i in range(2) if (s, i) != (3, 1)]
    assert [r["step"] for r in _read(api, run_id, q="common words 1", order="asc", limit=1000)["rollouts"]] == [
        1, 1, *[s for s in range(10, 20) for _ in range(2)]]
