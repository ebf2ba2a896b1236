"""Misuse fails at once in prepare(), with a message that says what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from fadewatch.errors import UsageError
from fadewatch.stats import HistogramSpec, StatsConfig, prepare, reduce

N, T = 6, 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(advantages=np.zeros(N), rewards=np.zeros(N - 1)), "rewards has 5 rollouts but advantages has 6"),
    (dict(advantages=np.zeros((N, T)), entropy=np.zeros((N, T + 1))), "token-level inputs must all be"),
    (dict(entropy=np.zeros(N)), r"entropy: expected per-token values of shape \[N, T\]"),
    (dict(logprobs=["a", "b"]), "logprobs: expected per-token values"),
    (dict(rewards=np.zeros((N, 2))), r"rewards: expected one number per rollout, shape \[N\]"),
    (dict(rewards=["x", "y"]), "expected one number per rollout"),
    (dict(rewards=np.array(["1", "2"], dtype=object)), "got strings"),
    (dict(entropy=np.array([[None, 1]], dtype=object)), "expected numbers, got a numpy array of dtype object"),
    (dict(mask=np.ones(N)), r"mask: expected a dense \[N, T\]"),
    (dict(mask=[[1, 1], [1]]), r"mask: expected a dense \[N, T\]"),
    (dict(advantages=np.zeros(N), group_ids=4), "group size 4 does not divide N=6"),
    (dict(advantages=np.zeros(N), group_ids=0), "group size must be >= 1"),
    (dict(group_ids=3), "needs a per-rollout input"),
    (dict(advantages=np.zeros(N), group_ids=np.zeros((N, 2), dtype=int)), "one id per rollout"),
    (dict(advantages=np.zeros(N), group_ids=np.zeros(N)), "integer or string ids"),
    (dict(completions=np.zeros((N, T))), "token ids must be integers"),
    (dict(completions=np.zeros(N, dtype=int)), "expected N strings"),
    (dict(completions=[[{"role": "assistant", "content": "hi"}]]), "for chat messages pass their text"),
    (dict(advantages=np.zeros((2, 3, 4))), r"one per rollout \[N\] or one per token \[N, T\]"),
    (dict(entropy=[[1.0, 2.0], [3.0]], logprobs=[[1.0], [3.0]]), "different per-rollout token counts"),
    (dict(entropy=[[1.0, 2.0, 3.0], [3.0]], mask=np.ones((2, 2))), "row of 3 tokens"),
    (dict(entropy=[[1.0], 2.0]), "must hold only sequences"),
    (dict(advantages=[]), "advantages is empty"),
    (dict(rewards={"a": 1}), "expected a torch tensor, a numpy array or a list, got dict"),
    (dict(advantages=np.zeros(0)), "no rollouts"),
    (dict(scalars=[1.0]), "scalars must be a dict"),
    (dict(scalars={"loss": np.zeros(3)}), "scalar 'loss': expected a number"),
    (dict(config={"success_threshold": 1}), "config must be a StatsConfig"),
])
def test_prepare_rejects(kwargs, message):
    with pytest.raises(UsageError, match=message):
        prepare(**kwargs)


def test_usage_error_is_a_value_error():
    with pytest.raises(ValueError):
        prepare(entropy=np.zeros(3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(difficulty_edges=(0.0, 0.5)), "from 0.0 to 1.0"),
    (dict(difficulty_edges=(0.0, 0.6, 0.5, 1.0)), "strictly increasing"),
    (dict(quantiles=(0.5, 1.5)), r"quantiles must lie in \[0, 1\]"),
    (dict(pass_at_k=(0, 2)), "pass_at_k values must be >= 1"),
    (dict(histograms={"entropy": (0, 1, 2)}), "must be a HistogramSpec"),
    (dict(diversity_max_groups=-1), "diversity_max_groups must be >= 0"),
    (dict(jaccard_n=0), "jaccard_n must be >= 1"),
])
def test_config_rejects(kwargs, message):
    with pytest.raises(UsageError, match=message):
        StatsConfig(**kwargs)


def test_histogram_spec_rejects():
    with pytest.raises(UsageError, match="finite lo < hi"):
        HistogramSpec(1.0, 1.0, 4)
    with pytest.raises(UsageError, match="positive integer"):
        HistogramSpec(0.0, 1.0, 0)


def test_mixed_group_id_types_fail_in_reduce():
    with pytest.raises(UsageError, match="all ints or all strings"):
        reduce(prepare(rewards=[1.0, 0.0], group_ids=np.array([1, "a"], dtype=object)))


def test_reduce_wants_prepared_inputs():
    with pytest.raises(UsageError, match="StepInputs from prepare"):
        reduce({"advantages": [1.0]})


def test_custom_difficulty_edges_label_their_bins():
    edges, labels = StatsConfig(difficulty_edges=(0.0, 0.25, 1.0)).difficulty_bins()
    assert edges == [0.0, 0.0, 0.25, 1.0, 1.0]
    assert labels == ["0", "(0,0.25]", "(0.25,1)", "1"]
