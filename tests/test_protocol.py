"""fadewatch.protocol on its own: the name rules, Retry-After, error details, the registry's lookups."""

from __future__ import annotations

import email.utils
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fadewatch.errors import UsageError
from fadewatch.protocol import answers, limits, metrics, names

NOW = 1_700_000_000.0


# ---- names -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["loss", "entropy/mean", "pass@8", "a b", "x[0]:y-z.w_v", "a" * 200])
def test_metric_names_that_pass(name):
    assert names.is_metric_name(name) and names.metric_name_problem(name) is None
    assert names.check_metric_name(name) == name


@pytest.mark.parametrize("name", ["", "a" * 201, "a,b", "é", "tab\t", "quote'", 'x"', "nul\x00", None, 3, b"loss"])
def test_metric_names_that_fail_say_the_rule(name):
    assert not names.is_metric_name(name)
    assert names.metric_name_problem(name) == f"metric names are {names.METRIC_NAME_RULE}"
    with pytest.raises(ValueError, match="letters, digits"):
        names.check_metric_name(name)


@given(st.text(max_size=210))
@settings(max_examples=200, deadline=None)
def test_metric_name_rule_is_the_character_class_and_the_length(text):
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@:[] ")
    expected = 1 <= len(text) <= limits.MAX_NAME_LENGTH and set(text) <= allowed
    assert names.is_metric_name(text) == expected


@pytest.mark.parametrize("value, problem", [
    ("qwen-7b · grpo (lr 1e-6)", None),
    ("x" * 200, None),
    ("", "1-200 characters"),
    ("x" * 201, "1-200 characters"),
    ("   ", "blank"),
    ("two\nlines", "control characters"),
    ("del\x7f", "control characters"),
    (None, "text"),
])
def test_display_names(value, problem):
    found = names.display_name_problem(value)
    assert (found is None) if problem is None else (problem in found)
    if problem:
        with pytest.raises(ValueError, match=problem):
            names.check_display_name(value)


def test_the_derived_keys_query_holds_a_full_request_of_the_longest_names():
    longest = ",".join(["a" * limits.MAX_NAME_LENGTH] * limits.MAX_KEYS_PER_REQUEST)
    assert len(longest) == limits.MAX_KEYS_CHARS


# ---- answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, kind", [
    (None, "retry"), (200, "ok"), (201, "ok"), (204, "ok"), (408, "retry"), (425, "retry"), (429, "retry"),
    (500, "retry"), (503, "retry"), (507, "retry"), (401, "auth"), (403, "auth"), (404, "not_found"),
    (413, "too_large"), (400, "rejected"), (409, "rejected"), (422, "rejected"), (302, "rejected"),
])
def test_answer_kinds(status, kind):
    assert answers.answer_kind(status) == kind
    assert answers.is_retriable(status) == (kind == "retry")


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), (" 2 ", 2.0), ("0", 0.0), ("1.5", 1.5), ("1e300", 1e300),
    (None, None), ("", None), ("  ", None), ("soon", None), ("nan", None), ("NaN", None), ("inf", None),
    ("-inf", None), ("1e400", None), ("9" * 400, None), ("-5", None), ("0x10", None), (7, None),
    ("Fri, 31 Dec 99999 23:59:59 GMT", None), ("Mon, 32 Foo 2024 99:99:99 GMT", None),
    ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
])
def test_retry_after_values(value, seconds):
    assert answers.parse_retry_after(value, NOW) == seconds


def test_retry_after_as_an_http_date_is_the_time_until_then():
    in_a_minute = email.utils.formatdate(NOW + 60, usegmt=True)
    assert answers.parse_retry_after(in_a_minute, NOW) == pytest.approx(60.0)
    naive = email.utils.formatdate(NOW + 30)  # "-0000": a date without its zone is GMT
    assert answers.parse_retry_after(naive.replace("+0000", "-0000"), NOW) == pytest.approx(30.0)


@given(st.one_of(st.none(), st.text(max_size=60), st.floats().map(repr), st.integers().map(str),
                 st.datetimes().map(lambda d: email.utils.format_datetime(d))))
@settings(max_examples=300, deadline=None)
def test_retry_after_never_raises_and_is_a_usable_wait(value):
    seconds = answers.parse_retry_after(value, NOW)
    assert seconds is None or (isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0)


@pytest.mark.parametrize("body, line", [
    ({"detail": "run 5 not found"}, "run 5 not found"),
    ({"detail": "  two\n  lines  "}, "two lines"),
    ({"detail": [{"loc": ["body", "records", 0, "step"], "msg": "Input should be greater than or equal to 0"},
                 {"loc": ["query", "keys"], "msg": "Value error, metric names are short"}]},
     "records.0.step: Input should be greater than or equal to 0; query.keys: metric names are short"),
    ({"detail": [{"loc": [], "msg": "whole body"}]}, "whole body"),
    ({"detail": {"code": 7}}, '{"code":7}'),
    ({"error": "other shape"}, '{"error":"other shape"}'),
    ({"detail": None}, "fallback"),
    ({"detail": []}, "fallback"),
    (None, "fallback"),
    ("plain string", "plain string"),
    ([{"msg": "a"}, "b"], "a; b"),
])
def test_error_detail_is_one_short_line(body, line):
    assert answers.error_detail(body, "fallback") == line


def test_error_detail_keeps_five_errors_and_300_characters():
    errors = [{"loc": ["body", "f", i], "msg": "x" * 100} for i in range(9)]
    text = answers.error_detail({"detail": errors})
    assert len(text) == 300 and text.startswith("f.0: x")
    assert answers.describe_errors(errors).count(";") == 4


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
@settings(max_examples=200, deadline=None)
def test_error_detail_survives_any_json(body):
    text = answers.error_detail(body, "fallback")
    assert isinstance(text, str) and "\n" not in text and len(text) <= 300


# ---- the registry ------------------------------------------------------------------------

def test_lookups_find_names_and_families_and_refuse_others():
    assert metrics.metric(metrics.ENTROPY_MEAN).unit == "nats per token"
    assert metrics.metric("pass@16") is metrics.metric(metrics.pass_at(1)) is metrics.metric(metrics.PASS_AT_K)
    assert metrics.find("loss") is None and metrics.find("pass@0") is None and metrics.find("pass@x") is None
    with pytest.raises(UsageError, match="did you mean entropy/mean"):
        metrics.metric("entropy/maen")
    with pytest.raises(UsageError):
        metrics.metric(None)
    with pytest.raises(UsageError):
        metrics.pass_at(0)
    assert [metrics.pass_k(n) for n in ("pass@1", "pass@32", "pass@", "pass@03", "xpass@2")] == [1, 32, None, None, None]


def test_every_entry_is_complete_and_its_name_a_metric_name():
    entries = list(metrics.metrics())
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.kind in ("scalar", "histogram") and e.bad in ("up", "down", "both", "none")
        assert e.meaning and e.unit and e.source in ("stats", "trl")
        assert names.is_metric_name(e.name.replace("{k}", "1")), e.name
    constants = {v for k, v in vars(metrics).items() if k.isupper() and isinstance(v, str) and k != "OTHER"}
    assert constants == {e.name for e in entries}
    assert metrics.in_chart("sign-mass") == [metrics.SIGN_M_POS, metrics.SIGN_M_NEG]
