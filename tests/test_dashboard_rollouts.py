"""The rollout inspector in a real browser: heatmap cells open it on their bin, search narrows it,
exports round-trip, and hostile text is shown as text."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from tests.support.dashboard import make_run, post_steps, step_record, wait_for_graph
from tests.support.rollouts import rollout_group

DIFF_LABELS = ["0", "(0,0.1]", "(0.1,0.2]", "(0.2,0.3]", "(0.3,0.4]", "(0.4,0.5]", "(0.5,0.6]", "(0.6,0.7]",
               "(0.7,0.8]", "(0.8,0.9]", "(0.9,1)", "1"]
DIFF_EDGES = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
LONG = "start of a long completion. " + "lorem ipsum dolor " * 1_100 + "and its very end."  # ~20k characters
HOSTILE = ["<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=2\">",
           "\u202eevil reversed\u202c e\u0301 👩\u200d👩\u200d👧 zero\u200bwidth \ufeff{{7*7}} &amp; &lt;", LONG]
TOKENS = ["<b>", "bold", "</b>", " & more"]


def _difficulty(bins: dict[str, float]) -> dict:
    counts = [bins.get(label, 0.0) for label in DIFF_LABELS]
    return {"edges": DIFF_EDGES, "labels": DIFF_LABELS, "counts": counts}


def _step(step: int) -> dict:
    """Three groups: a (solve 0.25, A +1.5 and -0.5), b (solve 0.5, A ±0.5), c (solved, A = 0)."""
    record = step_record(step, samples=False)
    counts = [0.0] * 80
    for a, n in ((1.5, 1), (-0.5, 5), (0.5, 2), (0.0, 4)):
        counts[int((a + 4.0) / 0.1 + 1e-9)] += n
    record["histograms"]["advantages"] = {"lo": -4.0, "hi": 4.0, "counts": counts}
    record["histograms"]["difficulty/groups"] = _difficulty({"(0.2,0.3]": 1, "(0.4,0.5]": 1, "1": 1})
    record["histograms"]["difficulty/mass_pos"] = _difficulty({"(0.2,0.3]": 1.5, "(0.4,0.5]": 1.0})
    record["histograms"]["difficulty/mass_neg"] = _difficulty({"(0.2,0.3]": 1.5, "(0.4,0.5]": 1.0})
    texts = {"a": [f"s{step} a {i}" for i in range(4)], "b": [f"s{step} b {i}" for i in range(4)]}
    if step == 3:
        texts["b"][2] = "s3 b 2 with the NEEDLE inside"
    if step == 8:
        texts["a"][1] = "s8 a 1: a needle too"
    groups = [rollout_group("a", f"prompt a at {step}", [1.5, -0.5, -0.5, -0.5], texts=texts["a"]),
              rollout_group("b", "prompt b", [0.5, 0.5, -0.5, -0.5], texts=texts["b"]),
              rollout_group("c", "prompt c", [0.0] * 4, rewards=[1.0] * 4)]
    if step == 9:
        groups[2]["completions"] = [{"text": t, "reward": 1.0, "advantage": 0.0} for t in HOSTILE]
        groups[2]["completions"][0]["tokens"] = {"text": TOKENS, "entropy": [0.1, 2.5, 0.3, None]}
        groups[2]["completions"][0]["text"] = "".join(TOKENS)
    record["rollouts"] = groups
    return record


@pytest.fixture(scope="module")
def seeded(dashboard_server):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1", timeout=30) as api:
        run_id = make_run(api, "inspected", project="inspector")
        post_steps(api, run_id, [_step(s) for s in range(10)])
    return run_id


CELL = """([id, x, y]) => {
  const gd = document.getElementById(id).querySelector('.js-plotly-plot');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
  return [box.left + xa.c2p(xa.d2c(x)), box.top + ya.c2p(ya.d2c(y))];
}"""


def _click_cell(page, graph_id: str, x, y) -> None:
    page.locator(f"#{graph_id}").scroll_into_view_if_needed()
    px, py = page.evaluate(CELL, [graph_id, x, y])
    page.mouse.click(px, py)


def _shown(page) -> list[str]:
    return page.eval_on_selector_all(".fw-rollout pre", "els => els.map(e => e.innerText)")


def test_a_heatmap_cell_opens_that_steps_rollouts_of_that_bin(page, seeded, dashboard_server):
    page.goto(f"{dashboard_server.url}/runs/{seeded}")
    wait_for_graph(page, "run-adv-heatmap", "g.data.some(t => t.type === 'heatmap' && t.x.length === 10)")
    page.locator("#run-rollouts").scroll_into_view_if_needed()  # the section loads once scrolled to
    page.wait_for_selector("#run-rollouts >> text=s9 a 0")  # the preview follows the newest step
    _click_cell(page, "run-adv-heatmap", 5, 1.55)  # the bin [1.5, 1.6) at step 5
    page.wait_for_url("**/runs/*/rollouts?*")
    page.wait_for_selector(".fw-group-card")
    assert "advantage=%5B1.5%2C1.6%29" in page.url and "step=5" in page.url
    page.wait_for_function("() => document.getElementById('ro-step-label').innerText.startsWith('step 5 ')")
    assert _shown(page) == ["s5 a 0"]
    page.click("#ro-next")  # the next step with rollouts, same bin
    page.wait_for_function("() => document.getElementById('ro-step-label').innerText.startsWith('step 6 ')")
    page.wait_for_function("() => document.querySelector('.fw-rollout pre').innerText === 's6 a 0'")

    page.go_back()
    wait_for_graph(page, "run-diff-heatmap", "g.data.some(t => t.type === 'heatmap' && t.x.length === 10)")
    _click_cell(page, "run-diff-heatmap", 7, "(0.4,0.5]")
    page.wait_for_url("**/runs/*/rollouts?*difficulty*")
    page.wait_for_function("() => document.querySelectorAll('.fw-rollout').length === 4")
    assert _shown(page) == [f"s7 b {i}" for i in range(4)]
    assert page.inner_text(".fw-group-card .fw-card-title").startswith("step 7")


def test_search_narrows_the_inspector_and_exports_round_trip(page, seeded, dashboard_server):
    page.goto(f"{dashboard_server.url}/runs/{seeded}/rollouts")
    page.wait_for_function("() => document.querySelectorAll('.fw-group-card').length === 3")  # step 9
    page.click("#ro-scope >> text=all steps")
    page.fill("#ro-q", "needle")
    page.press("#ro-q", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.fw-rollout').length === 2")
    assert _shown(page) == ["s8 a 1: a needle too", "s3 b 2 with the NEEDLE inside"]  # newest step first

    api_rows = httpx.get(f"{dashboard_server.url}/api/v1/runs/{seeded}/rollouts",
                         params={"q": "needle", "order": "desc"}).json()["rollouts"]
    jsonl = httpx.get(dashboard_server.url + page.get_attribute("#ro-export-jsonl", "href"))
    assert jsonl.status_code == 200
    assert [json.loads(line) for line in jsonl.text.splitlines()] == api_rows
    import pyarrow.parquet as pq

    parquet = httpx.get(dashboard_server.url + page.get_attribute("#ro-export-parquet", "href"))
    rows = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    for row in rows:
        row["rewards"] = None if row["rewards"] is None else json.loads(row["rewards"])
        row["tokens"] = None if row["tokens"] is None else json.loads(row["tokens"])
    assert rows == api_rows


def test_hostile_text_is_shown_literally(page, seeded, dashboard_server):
    page.goto(f"{dashboard_server.url}/runs/{seeded}/rollouts?step=9&group=c")
    page.wait_for_function("() => document.querySelectorAll('.fw-rollout').length === 4")
    assert _shown(page) == ["".join(TOKENS), *HOSTILE[1:]]
    tokens = page.eval_on_selector_all(".fw-token", "els => els.map(e => e.textContent)")
    assert tokens == TOKENS
    assert page.evaluate("window.__xss") is None and page.locator("img[src='x']").count() == 0
    assert page.locator(".fw-rollout b").count() == 0
