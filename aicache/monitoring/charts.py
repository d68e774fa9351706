"""Chart geometry for the admin dashboard, drawn as inline SVG by templates (no JavaScript, no
network). Colours come from the admin's CSS variables (see ``dashboard.css``), so dark mode works.
Each chart is laid out twice, wide and narrow, and CSS shows the one that fits (text in a scaled
SVG would be unreadable on a phone). Each chart carries its data as a table and a one-sentence
summary (the SVG's ``aria-label``): its text alternative.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: (variant, width, height, x ticks, bar label width, label characters)
LAYOUTS = (("wide", 640, 220, 5, 150, 22), ("narrow", 360, 200, 3, 96, 12))
LEFT, RIGHT, TOP, BOTTOM = 66, 12, 12, 28
BAR_ROW = 26
BAR_HEIGHT = BAR_ROW - 8
MAX_DOTS = 60


@dataclass(frozen=True)
class Series:
    name: str
    color: int  # index into the palette of dashboard.css (.series-0 ...)
    path: str  # SVG path data; "" when the series has no point
    dots: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Plot:
    """One layout of a line chart."""

    variant: str
    width: int
    height: int
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]

    left = LEFT
    axis_x = LEFT - 10

    @property
    def right_x(self) -> int:
        return self.width - RIGHT

    @property
    def label_y(self) -> int:
        return self.height - 8

    @property
    def mid_x(self) -> int:
        return self.width // 2


@dataclass(frozen=True)
class LineChart:
    slug: str
    title: str
    summary: str
    plots: list[Plot]
    legend: list[Series]
    headers: list[str]
    rows: list[list[str]]
    empty: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: float
    width: float
    label_x: float

    @property
    def text_y(self) -> float:
        return self.y + BAR_HEIGHT / 2

    @property
    def value_x(self) -> float:
        return self.label_x + 8 + self.width + 6

    @property
    def bar_x(self) -> float:
        return self.label_x + 8


@dataclass(frozen=True)
class BarPlot:
    variant: str
    width: int
    height: int
    bars: list[Bar]
    bar_height = BAR_HEIGHT

    @property
    def mid_x(self) -> int:
        return self.width // 2


@dataclass(frozen=True)
class BarChart:
    slug: str
    title: str
    summary: str
    plots: list[BarPlot]
    rows: list[list[str]]
    empty: bool = False


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at least ``value`` (an axis top that reads well)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value * (1 - 1e-9):
            return step * exp
    return 10 * exp  # pragma: no cover (the loop ends at 10)


def _time_label(at: dt.datetime, span: dt.timedelta) -> str:
    return at.strftime("%H:%M") if span <= dt.timedelta(days=1) else at.strftime("%b %d")


def line_chart(
    slug: str,
    title: str,
    since: dt.datetime,
    until: dt.datetime,
    times: Sequence[dt.datetime],
    series: dict[str, Sequence[float | None]],
    fmt: Callable[[float], str],
    y_max: float | None = None,
) -> LineChart:
    """Series over time across [since, until]; a ``None`` value breaks its line."""
    span = until - since
    values = [v for vs in series.values() for v in vs if v is not None]
    top = y_max if y_max is not None else nice_max(max(values, default=0.0))
    plots = []
    for variant, width, height, n_ticks, _, _ in LAYOUTS:
        plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

        def x(at: dt.datetime, plot_w: int = plot_w) -> float:
            # the first period may start before the window (it is partly inside): pin it to the edge
            return round(LEFT + plot_w * ((max(at, since) - since) / span), 1)

        def y(v: float, plot_h: int = plot_h) -> float:
            return round(TOP + plot_h * (1 - min(v, top) / top), 1)

        drawn = []
        for i, (name, vs) in enumerate(series.items()):
            parts, dots, pen_down = [], [], False
            present = sum(v is not None for v in vs)
            for j, (at, v) in enumerate(zip(times, vs, strict=True)):
                if v is None:
                    pen_down = False
                    continue
                parts.append(f"{'L' if pen_down else 'M'}{x(at)} {y(v)}")
                alone = (j == 0 or vs[j - 1] is None) and (j + 1 == len(vs) or vs[j + 1] is None)
                # dots for few non-zero points; always for an isolated one (invisible otherwise)
                if (present <= MAX_DOTS and v) or alone:
                    dots.append((x(at), y(v)))
                pen_down = True
            drawn.append(Series(name, i % 6, " ".join(parts), tuple(dots)))
        x_ticks = []
        for k in range(n_ticks):
            at = since + span * k / (n_ticks - 1)
            anchor = "start" if k == 0 else "end" if k == n_ticks - 1 else "middle"
            x_ticks.append(Tick(x(at), _time_label(at, span), anchor))
        y_ticks = [Tick(y(top * k / 4), fmt(top * k / 4)) for k in range(5)]
        plots.append(Plot(variant, width, height, drawn, x_ticks, y_ticks))
    rows = [
        [at.strftime("%Y-%m-%d %H:%M"), *("-" if vs[j] is None else fmt(vs[j]) for vs in series.values())]
        for j, at in enumerate(times)
    ]
    ranges = []
    for name, vs in series.items():
        present = [v for v in vs if v is not None]
        if present:
            ranges.append(f"{name} from {fmt(min(present))} to {fmt(max(present))}")
    summary = (
        f"{title}, {len(times)} periods: " + "; ".join(ranges) + "."
        if values
        else f"{title}: no data in this window."
    )
    return LineChart(
        slug,
        title,
        summary,
        plots,
        plots[0].series,
        ["period (UTC)", *series],
        rows,
        empty=not values,
    )


def bar_chart(
    slug: str,
    title: str,
    items: Sequence[tuple[str, float]],
    fmt: Callable[[float], str],
    top: float | None = None,
) -> BarChart:
    """Horizontal bars, one per (label, value), in the order given."""
    top = top if top is not None else max((v for _, v in items), default=0.0) or 1.0
    plots = []
    for variant, width, _, _, label_w, chars in LAYOUTS:
        plot_w = width - label_w - 70
        bars = [
            Bar(
                label if len(label) <= chars else label[: chars - 1] + "…",
                fmt(value),
                4 + i * BAR_ROW,
                round(plot_w * min(value, top) / top, 1) if top else 0.0,
                label_w - 8,
            )
            for i, (label, value) in enumerate(items)
        ]
        plots.append(BarPlot(variant, width, max(BAR_ROW, 8 + len(items) * BAR_ROW), bars))
    summary = (
        f"{title}: " + ", ".join(f"{label} {fmt(value)}" for label, value in items) + "."
        if items
        else f"{title}: no data in this window."
    )
    return BarChart(
        slug, title, summary, plots, [[label, fmt(value)] for label, value in items], empty=not items
    )
