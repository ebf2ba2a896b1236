"""StepBatch validation: what the remembered names and the checks done in C must not change.

The ingest path remembers names and quantile keys it found valid, and checks that values
are finite with one sum; these tests pin down the answers that must stay as they were.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from fadewatch.protocol.names import METRIC_NAME_RULE
from fadewatch.server.schemas import StepBatch


def _histogram(**extra) -> dict:
    return {"lo": 0.0, "hi": 1.0, "counts": [1.0, 2.0], **extra}


def _errors(payload: dict | str) -> list[dict]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(ValidationError) as caught:
        StepBatch.model_validate_json(body)
    return [{k: e[k] for k in ("loc", "msg")} for e in caught.value.errors()]


def test_a_bad_name_fails_even_after_good_ones_were_remembered():
    good = {"records": [{"step": 0, "scalars": {"loss": 1.0}, "histograms": {"adv": _histogram()}}]}
    StepBatch.model_validate_json(json.dumps(good))
    for _ in range(2):  # a failure is never remembered as valid
        errors = _errors({"records": [{"step": 1, "scalars": {"loss": 1.0, "bad,name": 2.0}}]})
        assert errors == [{"loc": ("records", 0, "scalars", "bad,name", "[key]"),
                           "msg": f"Value error, metric names are {METRIC_NAME_RULE}"}]


@pytest.mark.parametrize("key, message", [("x", "quantile key 'x' is not a number"),
                                          ("1.5", "quantile key '1.5' is outside [0, 1]")])
def test_bad_quantile_keys_fail_every_time(key, message):
    StepBatch.model_validate_json(json.dumps(
        {"records": [{"step": 0, "histograms": {"h": _histogram(quantiles={"0.5": 0.1})}}]}))
    for _ in range(2):
        errors = _errors({"records": [{"step": 0, "histograms": {"h": _histogram(quantiles={"0.5": 0.1, key: 0.2})}}]})
        assert errors == [{"loc": ("records", 0, "histograms", "h"), "msg": f"Value error, {message}"}]


def test_decreasing_edges_fail():
    errors = _errors({"records": [{"step": 0, "histograms": {"h": {"counts": [1, 2], "edges": [0.0, 2.0, 1.0]}}}]})
    assert errors == [{"loc": ("records", 0, "histograms", "h"), "msg": "Value error, edges must be non-decreasing"}]
    ok = StepBatch.model_validate_json('{"records": [{"step": 0, "histograms": {"h": {"counts": [1, 2], '
                                       '"edges": [0.0, 1.0, 1.0]}}}]}')
    assert ok.records[0].histograms["h"].edges == [0.0, 1.0, 1.0]


def test_non_finite_statistics_read_as_absent_and_finite_ones_stay():
    body = ('{"records": [{"step": 0, "time": Infinity, "histograms": {"h": {"lo": 0, "hi": 1, "counts": [1, 2], '
            '"sum": NaN, "sum_sq": 1e308, "min": -Infinity, "max": 1e308, "quantiles": {"0.5": Infinity, '
            '"0.9": 1e308, "0.99": 1e308}}}}]}')
    record = StepBatch.model_validate_json(body).records[0]
    h = record.histograms["h"]
    assert record.time is None
    assert (h.sum, h.sum_sq, h.min, h.max) == (None, 1e308, None, 1e308)
    assert h.quantiles == {"0.5": None, "0.9": 1e308, "0.99": 1e308}
    assert (h.bins, h.count) == (2, 3.0)


def test_non_finite_scalars_are_flagged_sorted_and_large_finite_ones_are_not():
    body = ('{"records": [{"step": 0, "scalars": {"z": NaN, "big": 1e308, "bigger": 1e308, "a": -Infinity, '
            '"zero": 0.0, "none": null}, "nonfinite": ["m", "m"]}, '
            '{"step": 1, "scalars": {"big": 1e308, "bigger": 1e308}}, {"step": 2, "scalars": {}, "nonfinite": []}]}')
    first, second, third = StepBatch.model_validate_json(body).records
    assert first.scalars == {"z": None, "big": 1e308, "bigger": 1e308, "a": None, "zero": 0.0, "none": None}
    assert first.nonfinite == ["a", "m", "z"]
    assert second.scalars == {"big": 1e308, "bigger": 1e308} and second.nonfinite is None
    assert third.nonfinite is None
