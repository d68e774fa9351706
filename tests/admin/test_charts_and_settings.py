"""Chart geometry and the ADMIN_ENTRY_PREVIEW_CHARS setting."""

import datetime as dt

import pytest

from aicache.checks import check_aicache_settings
from aicache.monitoring import charts

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
HOURS = [T0 + dt.timedelta(hours=h) for h in range(5)]


@pytest.mark.parametrize(
    "value,top", [(0, 1.0), (0.3, 0.5), (1, 1), (7, 10), (12, 20), (240, 250), (0.0004, 0.0005)]
)
def test_nice_max(value, top):
    assert charts.nice_max(value) == pytest.approx(top)


def test_line_chart_scales_breaks_on_gaps_and_describes_itself():
    chart = charts.line_chart(
        "c", "Hits", T0, HOURS[-1], HOURS, {"hits": [0, 10, None, 50, 20]}, lambda v: f"{v:g}"
    )
    wide, narrow = chart.plots
    assert (wide.variant, wide.width, narrow.variant, narrow.width) == ("wide", 640, "narrow", 360)
    path = wide.series[0].path
    assert path.count("M") == 2 and path.count("L") == 2  # the None splits the line in two
    assert path.startswith(f"M{charts.LEFT}.0 {wide.height - charts.BOTTOM}.0 ")  # 0 sits on the axis
    ys = [y for _, y in wide.series[0].dots]
    assert len(ys) == 3  # dots for the non-zero points only
    assert min(ys) == charts.TOP  # 50 is the top of a 0..50 axis
    assert [t.label for t in wide.y_ticks] == ["0", "12.5", "25", "37.5", "50"]
    assert chart.summary == "Hits, 5 periods: hits from 0 to 50."
    assert chart.rows[2] == ["2026-11-01 02:00", "-"]
    assert not chart.empty


def test_isolated_points_keep_a_dot_when_dense():
    times = [T0 + dt.timedelta(hours=h) for h in range(100)]
    values = [None] * 100
    values[50] = 3.0
    values[70], values[71] = 1.0, 2.0
    (series,) = charts.line_chart("c", "t", T0, times[-1], times, {"s": values}, str).plots[0].series
    assert len(series.dots) == 3  # few points: all dotted
    values = [1.0] * 100
    values[50] = None
    values[52] = None
    (series,) = charts.line_chart("c", "t", T0, times[-1], times, {"s": values}, str).plots[0].series
    assert len(series.dots) == 1  # only the lone point between the two gaps


def test_empty_chart_says_so():
    chart = charts.line_chart("c", "Hit rate", T0, HOURS[-1], HOURS, {"hit rate": [None] * 5}, str)
    assert chart.empty and chart.summary == "Hit rate: no data in this window."
    bars = charts.bar_chart("b", "Top", [], str)
    assert bars.empty and bars.summary == "Top: no data in this window."


def test_bar_chart_widths_are_proportional_and_labels_fit():
    chart = charts.bar_chart(
        "b", "Top", [("summarize", 100), ("a-very-long-operation-name", 25)], lambda v: f"{v:g}"
    )
    wide, narrow = chart.plots
    assert wide.bars[1].width == pytest.approx(wide.bars[0].width / 4, abs=0.1)
    assert narrow.bars[1].label == "a-very-long…" and len(narrow.bars[1].label) == 12
    assert wide.bars[1].label == "a-very-long-operation…"
    for plot in chart.plots:
        assert all(b.value_x < plot.width for b in plot.bars)
    assert chart.summary == "Top: summarize 100, a-very-long-operation-name 25."


@pytest.mark.parametrize("bad", [-1, 10_001, 2.5, "40", True, None])
def test_preview_setting_is_checked(settings, bad):
    settings.AICACHE = {**settings.AICACHE, "ADMIN_ENTRY_PREVIEW_CHARS": bad}
    messages = check_aicache_settings()
    assert [m.id for m in messages] == ["aicache.E011"]
    assert "ADMIN_ENTRY_PREVIEW_CHARS" in messages[0].msg


@pytest.mark.parametrize("good", [0, 200, 10_000])
def test_preview_setting_accepts_0_to_10000(settings, good):
    settings.AICACHE = {**settings.AICACHE, "ADMIN_ENTRY_PREVIEW_CHARS": good}
    assert check_aicache_settings() == []


def test_preview_setting_is_process_wide(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ai": {
            **settings.CACHES["ai"],
            "OPTIONS": {**settings.CACHES["ai"]["OPTIONS"], "ADMIN_ENTRY_PREVIEW_CHARS": 5},
        },
    }
    assert [m.id for m in check_aicache_settings()] == ["aicache.E012"]
