"""A sequence's daily activity as an inline SVG chart: no script, no build step.

Pure geometry: the template draws the polylines and labels this returns, so the chart
renders (and prints) the same everywhere and is readable with scripts off.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 640, 180, 28
SERIES = (("sent", "Emails sent"), ("opened", "Opened (human)"), ("replied", "Replied"))


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
    """`days`: analytics.Day rows, oldest first (at least one)."""
    top = max([1, *(getattr(d, key) for d in days for key, _ in SERIES)])
    span = max(len(days) - 1, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def point(index: int, value: int) -> str:
        x = PAD + inner_w * index / span
        y = PAD + inner_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    lines = [
        Line(
            key,
            label,
            " ".join(point(i, getattr(d, key)) for i, d in enumerate(days)),
            sum(getattr(d, key) for d in days),
        )
        for key, label in SERIES
    ]
    return Chart(WIDTH, HEIGHT, lines, top, days[0].day.isoformat(), days[-1].day.isoformat())
