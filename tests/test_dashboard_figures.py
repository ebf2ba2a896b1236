"""Pure pieces of the dashboard: figure builders, the forecast line, form parsing."""

from __future__ import annotations

import pytest

from fadewatch.dashboard.pages.alerts.actions import rule_body
from fadewatch.dashboard.pages.alerts.alerting_api import parse_matchers
from fadewatch.dashboard.figures.charts import CHART_BY_ID, charts_for, other_keys, pass_keys
from fadewatch.dashboard.figures.series import (compare_figure, interval_trace, projection_trace, rounded,
                                                series_figure, text)
from fadewatch.dashboard.pages.run.regime import regime_shapes
from fadewatch.dashboard.figures.histograms import column_shares, heatmap_figure, occupied_range
from fadewatch.dashboard.figures.theme import run_color


def _points(steps, values):
    return {"steps": steps, "values": values, "min": values, "max": values}


def test_series_figure_maps_traces_and_shows_bands_only_when_downsampled():
    chart = CHART_BY_ID["sign-mass"]
    data = {"sign/m_pos": _points([0, 1], [0.2, 0.3])}
    fig, trace_map = series_figure(chart, chart.traces, data, downsampled=False)
    assert trace_map == [["", "alerts"], ["sign/m_pos", "line"], ["sign/m_neg", "line"]]
    assert fig["data"][1]["y"] == [0.2, 0.3] and fig["data"][2]["showlegend"] is False
    fig, trace_map = series_figure(chart, chart.traces, data, downsampled=True,
                                   alerts=[{"id": "1:1", "step": 1, "label": "<b>x</b>", "severity": "critical"}])
    assert [role for _, role in trace_map] == ["alerts", "lo", "hi", "line", "lo", "hi", "line"]
    assert fig["data"][0]["x"] == [1] and fig["data"][0]["hovertext"] == ["&lt;b&gt;x&lt;/b&gt;"]
    assert fig["layout"]["shapes"][-1]["x0"] == 1


def test_empty_chart_says_what_is_missing_and_hides_its_axes():
    chart = CHART_BY_ID["geometry"]
    fig, _ = series_figure(chart, chart.traces, {}, downsampled=False)
    assert "not logged yet: geometry/head_delta_norm" in fig["layout"]["annotations"][0]["text"]
    assert fig["layout"]["xaxis"]["visible"] is False and fig["layout"]["yaxis2"]["visible"] is False


def test_user_strings_are_escaped_and_runs_keep_their_colour():
    assert text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    fig = compare_figure("loss", [({"id": 3, "name": "<b>r</b>"}, _points([0], [1.0])),
                                  ({"id": 4, "name": "s"}, None)])
    assert fig["data"][0]["name"] == "&lt;b&gt;r&lt;/b&gt; (#3)"
    assert [t["line"]["color"] for t in fig["data"]] == [run_color(3), run_color(4)]
    assert run_color(3) != run_color(4) and run_color(3) == run_color(13)


def test_rounded_keeps_five_significant_digits_and_nulls():
    assert rounded([0.123456789, None, 12345.678, -1e-9]) == [0.12346, None, 12346.0, -1e-9]


def test_heatmap_leaves_empty_bins_blank_and_crops_to_the_occupied_range():
    matrix = {"steps": [0, 1], "first_steps": [0, 1], "edges": [float(e) for e in range(-4, 5)],
              "counts": [[0, 0, 0, 4, 4, 0, 0, 0], [0, 0, 0, 0, 8, 0, 0, 0]], "count": [8.0, 10.0]}
    assert column_shares(matrix) == [[None, None, None, 0.5, 0.5, None, None, None],
                                     [None, None, None, None, 0.8, None, None, None]]
    assert occupied_range(matrix, margin_bins=1) == [-2.0, 2.0]
    fig = heatmap_figure(matrix, "A", "advantage")
    assert fig["layout"]["yaxis"]["range"] == [-3.0, 3.0]
    assert occupied_range({**matrix, "labels": ["a"] * 8}) is None


def test_the_forecast_line_is_drawn_from_the_servers_forecast_only():
    forecast = {"step": 50, "fitted": 1.0, "slope": -0.02, "collapse_level": 0.6, "projected_step": 70,
                "horizon": 50}
    trace = projection_trace(forecast)
    assert trace["x"] == [50, 70] and trace["y"] == [1.0, 0.6] and trace["showlegend"]
    assert trace["name"] == "projected collapse in ~20 steps"
    assert projection_trace({**forecast, "projected_step": None})["x"] == []
    assert projection_trace({**forecast, "projected_step": 50 + 11 * 50})["x"] == []  # far beyond the horizon
    assert projection_trace(None)["showlegend"] is False
    band = interval_trace({**forecast, "early_step": 65, "late_step": 78})
    assert band["x"] == [65, 78] and band["y"] == [0.6, 0.6]
    assert interval_trace({**forecast, "early_step": 65, "late_step": None})["x"] == [65, 50 + 10 * 50]
    assert interval_trace({**forecast, "projected_step": None})["x"] == []


def test_regime_bands_mark_the_sign_regimes_the_server_holds():
    regime = {"spans": [{"start": 0, "end": 30, "sign": "balanced", "difficulty": "mid"},
                        {"start": 30, "end": 90, "sign": "failure-heavy", "difficulty": "mid"},
                        {"start": 90, "end": None, "sign": "success-heavy", "difficulty": "easy"}]}
    shapes = regime_shapes(regime, last_step=120)
    assert [(s["x0"], s["x1"], s["name"]) for s in shapes] == [
        (30, 90, "regime-failure-heavy-30"), (90, 120, "regime-success-heavy-90")]
    assert all(s["yref"] == "paper" and s["layer"] == "below" for s in shapes)
    assert regime_shapes(None, 10) == [] and regime_shapes(regime, None)[-1]["x1"] == 90


def test_pass_and_user_keys_find_their_charts():
    keys = ["pass@8", "pass@1", "loss", "my/metric", "reward/mean", "sign/n_pos"]
    assert pass_keys(keys) == ["pass@1", "pass@8"]
    assert other_keys(keys) == ["loss", "my/metric"]
    traces = dict((c.id, t) for c, t in charts_for(keys))["pass"]
    assert [t.key for t in traces] == ["pass@1", "pass@8", "diversity/pass_gap"]


def test_silence_matchers_and_rule_fields_are_read_or_explained():
    assert parse_matchers("rule=heavy_tails, run~abl-*\nseverity!=critical, run!~x*") == [
        {"name": "rule", "op": "=", "value": "heavy_tails"}, {"name": "run", "op": "~", "value": "abl-*"},
        {"name": "severity", "op": "!=", "value": "critical"}, {"name": "run", "op": "!~", "value": "x*"}]
    with pytest.raises(ValueError, match="cannot read 'nonsense'"):
        parse_matchers("nonsense")
    with pytest.raises(ValueError, match="at least one"):
        parse_matchers(" , ")
    assert rule_body("threshold", " kl ", ">=", 0.5, None, 3, 1, "critical") == {
        "detector": "threshold", "metric": "kl", "op": ">=", "value": 0.5, "for_steps": 3,
        "keep_firing_steps": 1, "severity": "critical"}
    assert rule_body("sign_imbalance", None, None, None, '{"bound": 0.6}', None, None, None)["params"] == {
        "bound": 0.6}
    with pytest.raises(ValueError, match="needs a metric and a value"):
        rule_body("threshold", "", ">", None, None, 1, 0, "warning")
    with pytest.raises(ValueError, match="JSON object"):
        rule_body("no_signal", None, None, None, "[1]", 1, 0, "warning")


def test_sign_balance_reads_on_its_fixed_scale():
    from fadewatch.dashboard.ui import fmt_signed

    assert [fmt_signed(v) for v in (2.4e-09, -1e-12, -0.079, 1.0, None, float("nan"))] == [
        "+0.00", "+0.00", "-0.08", "+1.00", "–", "–"]
