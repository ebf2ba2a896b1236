"""Diversity within groups, for text and for token ids, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fadewatch.stats import StatsConfig, compute

TEXTS = ["a b c", "a b c", "a b d", "x y", "z w"]
GROUPS = ["g0", "g0", "g0", "g1", "g1"]
VOCAB = {w: i + 1 for i, w in enumerate("abcdxyzw")}
ROWS = [[VOCAB[w] for w in t.split()] for t in TEXTS]

# g0: 2 distinct of 3; words a b c a b c a b d: 4 distinct of 9; bigrams ab bc ab bc ab bd:
# 3 distinct of 6; bigram sets {ab,bc} {ab,bc} {ab,bd}: Jaccard 1, 1/3, 1/3.
# g1: all distinct; bigram sets {xy} {zw}: Jaccard 0.
WANT = {
    "diversity/distinct_frac": (2 / 3 + 1) / 2,
    "diversity/distinct_1": (4 / 9 + 1) / 2,
    "diversity/distinct_2": (3 / 6 + 1) / 2,
    "diversity/pairwise_jaccard": (5 / 9 + 0) / 2,
    "diversity/groups_used": 2,
}


def check(scalars: dict) -> None:
    for name, value in WANT.items():
        assert scalars[name] == pytest.approx(value, rel=1e-12), name


def test_text_completions():
    check(compute(completions=TEXTS, group_ids=GROUPS).scalars)


def test_ragged_token_ids():
    check(compute(completions=ROWS, group_ids=GROUPS).scalars)


def test_dense_token_ids_with_padding_masked_out():
    ids = np.full((5, 4), -100)
    mask = np.zeros((5, 4))
    for i, r in enumerate(ROWS):
        ids[i, :len(r)], mask[i, :len(r)] = r, 1
    check(compute(completions=ids, mask=mask, group_ids=GROUPS).scalars)


def test_rows_of_a_group_need_not_be_adjacent():
    order = [3, 0, 4, 1, 2]
    s = compute(completions=[TEXTS[i] for i in order], group_ids=[GROUPS[i] for i in order])
    check(s.scalars)


def test_distinct_completion_share_sees_the_whole_row():
    ids = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 4], [3, 2, 1]])
    s = compute(completions=ids, group_ids=4).scalars
    assert s["diversity/distinct_frac"] == 0.75
    # Same tokens, different lengths: different completions.
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    assert compute(completions=ids, mask=mask, group_ids=4).scalars["diversity/distinct_frac"] == 1.0


def test_jaccard_order_is_configurable():
    s = compute(completions=["a b c d", "a b c e"], group_ids=2, config=StatsConfig(jaccard_n=3))
    assert s.scalars["diversity/pairwise_jaccard"] == pytest.approx(1 / 3)  # {abc,bcd} vs {abc,bce}
    s = compute(completions=["a b c d", "a b c e"], group_ids=2, config=StatsConfig(jaccard_n=1))
    assert s.scalars["diversity/pairwise_jaccard"] == pytest.approx(3 / 5)


def test_only_some_groups_are_used():
    texts = [f"w{g} v{i % 2}" for g in range(10) for i in range(2)]
    cfg = StatsConfig(diversity_max_groups=3)
    s = compute(completions=texts, group_ids=2, config=cfg).scalars
    assert s["diversity/groups_used"] == 3 and s["diversity/distinct_frac"] == 1.0
    assert "diversity/distinct_1" in compute(completions=texts, group_ids=2).scalars
    s = compute(completions=texts, group_ids=2, config=StatsConfig(diversity_max_groups=0)).scalars
    assert "diversity/distinct_frac" not in s


def test_groups_of_one_and_empty_completions():
    s = compute(completions=["a", "", "b b"], group_ids=[1, 2, 3]).scalars
    assert s["diversity/distinct_frac"] == 1.0
    assert s["diversity/distinct_1"] == pytest.approx((1 + 0.5) / 2)  # the empty one has no words
    assert s["diversity/pairwise_jaccard"] is None  # no pairs at all
    s = compute(completions=["", ""], group_ids=2).scalars
    assert s["diversity/distinct_frac"] == 0.5 and s["diversity/distinct_1"] is None


def test_unequal_groups_match_separate_computations():
    rng = np.random.default_rng(0)
    sizes = [2, 5, 3]
    ids = rng.integers(0, 4, (10, 6))
    groups = np.repeat([0, 1, 2], sizes)
    whole = compute(completions=ids, group_ids=groups).scalars
    parts = [compute(completions=ids[groups == g], group_ids=int(n)).scalars for g, n in enumerate(sizes)]
    for name in ("diversity/distinct_frac", "diversity/distinct_1", "diversity/distinct_2",
                 "diversity/pairwise_jaccard"):
        assert whole[name] == pytest.approx(np.mean([p[name] for p in parts]), rel=1e-12), name


def test_brute_force_on_random_ids():
    rng = np.random.default_rng(1)
    g, n, t = 6, 4, 9
    ids = rng.integers(0, 5, (g * n, t))
    lens = rng.integers(0, t + 1, g * n)
    mask = np.arange(t)[None, :] < lens[:, None]
    s = compute(completions=ids, mask=mask, group_ids=n).scalars
    d1, d2, jac, frac = [], [], [], []
    for k in range(g):
        rows = [tuple(ids[i, :lens[i]]) for i in range(k * n, k * n + n)]
        grams = [[r[j:j + 2] for j in range(len(r) - 1)] for r in rows]
        uni = [x for r in rows for x in r]
        bi = [x for gr in grams for x in gr]
        frac.append(len(set(rows)) / n)
        if uni:
            d1.append(len(set(uni)) / len(uni))
        if bi:
            d2.append(len(set(bi)) / len(bi))
        pairs = [(set(grams[a]), set(grams[b])) for a in range(n) for b in range(a + 1, n)]
        vals = [len(x & y) / len(x | y) for x, y in pairs if x | y]
        if vals:
            jac.append(np.mean(vals))
    assert s["diversity/distinct_frac"] == pytest.approx(np.mean(frac))
    assert s["diversity/distinct_1"] == pytest.approx(np.mean(d1))
    assert s["diversity/distinct_2"] == pytest.approx(np.mean(d2))
    assert s["diversity/pairwise_jaccard"] == pytest.approx(np.mean(jac))
