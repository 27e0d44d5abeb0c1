"""Charts as inline SVG: no script, no build step.

Pure geometry: the templates draw the polylines, bars and labels this returns, so the
charts render (and print) the same everywhere and are readable with scripts off. Each
chart also says its figures in words (the legend, the funnel's labels), for screen
readers and for people who would rather read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT, PAD = 640, 180, 28
SERIES = (("sent", "Emails sent"), ("opened", "Opened (human)"), ("replied", "Replied"))
SIGNALS = (("replied", "Replied"), ("meetings_booked", "Meetings booked"))


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    points: str  # "x,y x,y …" for <polyline points="…">
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: list[Line]
    top: int  # the value at the top grid line
    first_day: str
    last_day: str


def daily_chart(days: list) -> Chart:
    """`days`: analytics.Day rows, oldest first (at least one): a sequence's activity."""
    return lines_chart(
        [d.day for d in days],
        [(key, label, [getattr(d, key) for d in days]) for key, label in SERIES],
    )


def signals_chart(series) -> Chart:
    """`series`: reports.DailySignals, one row's replies and meetings per day."""
    return lines_chart(series.days, [(k, label, getattr(series, k)) for k, label in SIGNALS])


def lines_chart(days: list[date], series: list[tuple[str, str, list[int]]]) -> Chart:
    """One polyline per (key, label, values), the values one per day, oldest first."""
    top = max([1, *(v for _, _, values in series for v in values)])
    span = max(len(days) - 1, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def point(index: int, value: int) -> str:
        x = PAD + inner_w * index / span
        y = PAD + inner_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    lines = [
        Line(key, label, " ".join(point(i, v) for i, v in enumerate(values)), sum(values))
        for key, label, values in series
    ]
    return Chart(WIDTH, HEIGHT, lines, top, days[0].isoformat(), days[-1].isoformat())


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    width: float  # share of the chart's width, 0–100 (percent of the first stage)
    rate: float | None  # of the stage before; None for the first stage, or after a zero


def funnel(stages: list[tuple[str, int]]) -> list[Bar]:
    """Enrolled → emailed → replied → meeting: each bar as wide as its share of the
    first stage, with the step rate from the stage before."""
    first = max(stages[0][1], 1)
    bars = []
    previous: int | None = None
    for label, value in stages:
        rate = None if not previous else round(value / previous, 4)
        bars.append(Bar(label, value, round(100 * min(value, first) / first, 1), rate))
        previous = value
    return bars
