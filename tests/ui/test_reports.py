"""The reports page in Chromium: a team day run by the engine on an injected clock, the
report filtered by rep and period in the form, its figures read off the page against
what the run made, the charts drawn without script, and the rows' CSV downloaded and
checked. One flow: each browser test costs seconds."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from cadenza.domain.clock import FrozenClock
from cadenza.services.accounts.users import find_user_by_email
from tests.support.reports import Rep, run_team_day
from tests.ui.conftest import DEMO_EMAIL

RUN_DAY = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday far from the demo's own data


def test_a_report_by_rep_and_period_matches_the_run_and_exports(tab, server_ctx):
    server_ctx.clock = FrozenClock(RUN_DAY)
    rep = find_user_by_email(server_ctx, DEMO_EMAIL)
    day = run_team_day(server_ctx, Rep(server_ctx, rep))
    tab.login(path="/reports")
    page = tab.page
    page.select_option("#filter-by", "sequence")
    page.fill("#filter-start", "2030-01-07")
    page.fill("#filter-end", "2030-01-07")
    page.select_option("#filter-rep", str(day.rep_id))
    page.click("#apply-filters")
    page.wait_for_url("**/reports?*rep=*")
    row = page.locator(f'#report-table tr[data-key="{day.sequence_id}"]')
    figure = lambda name: row.locator(f'td[data-figure="{name}"]').inner_text().split()[0]  # noqa: E731
    assert (figure("enrolled"), figure("sent"), figure("replied"), figure("meetings_booked")) == (
        "3",
        "3",
        "1",
        "1",
    )  # the rep's three of the run's four; the other rep's one is filtered out
    assert page.locator("#report-period").inner_text().startswith("2030-01-07 – 2030-01-07")
    assert (
        page.locator(".funnel svg rect").count() == 4
        and page.locator(".chart polyline").count() == 2
    )
    tab.shot("reports")

    with page.expect_download() as download:
        page.click("#csv-messages")
    with open(download.value.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {r["mailbox_owner_id"] for r in rows} == {str(day.rep_id)}
    assert sum(int(r["replys"]) for r in rows) == 1 and all(
        r["sent_at"].startswith("2030-01-07") for r in rows
    )
