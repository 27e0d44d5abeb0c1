from datetime import date, timedelta

from cadenza.services.analytics.results import Day
from cadenza.web.ui.charts import HEIGHT, PAD, WIDTH, daily_chart


def test_points_span_the_plot_and_scale_to_the_busiest_day():
    start = date(2026, 3, 1)
    days = [
        Day(start, sent=2),
        Day(start + timedelta(1), sent=4, opened=1),
        Day(start + timedelta(2)),
    ]
    chart = daily_chart(days)
    sent = [tuple(map(float, p.split(","))) for p in chart.lines[0].points.split()]
    assert chart.top == 4 and chart.lines[0].total == 6
    assert [x for x, _ in sent] == [PAD, WIDTH / 2, WIDTH - PAD]
    assert [y for _, y in sent] == [PAD + (HEIGHT - 2 * PAD) / 2, PAD, HEIGHT - PAD]
    assert (chart.first_day, chart.last_day) == ("2026-03-01", "2026-03-03")


def test_a_single_quiet_day_still_draws():
    chart = daily_chart([Day(date(2026, 3, 1))])
    assert chart.top == 1 and all(line.points for line in chart.lines)
