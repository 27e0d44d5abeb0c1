"""The reports page over HTTP: the team day's figures per rep for the chosen period,
the funnel and chart without script, CSV downloads with the page's filters, a member's
own work only, and bad filters refused with a clear page."""

from __future__ import annotations

import csv
import io
import re

import pytest

from cadenza.services.accounts.users import create_user
from tests.support.reports import run_team_day

DAY = "start=2026-03-02&end=2026-03-02"


def _figure(page: str, key: int | str, figure: str) -> str:
    row = re.search(rf'<tr data-key="{key}"[^>]*>(.*?)</tr>', page, re.S).group(1)
    return re.search(rf'data-figure="{figure}">([^<]*)', row).group(1)


# The figures and the policy are checked on both databases over the API; the page once.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_reports_page_per_rep_and_csv(ctx, world, ui):
    create_user(ctx, "boss@example.com", password="secret", role="admin")
    day = run_team_day(ctx, world)
    ui.login("boss@example.com", "secret")
    page = ui.client.get(f"/reports?by=rep&{DAY}&basis=mailbox_owner")
    assert page.status_code == 200, page.text
    html = page.text
    assert (
        _figure(html, day.rep_id, "enrolled") == "3" and _figure(html, day.other_id, "sent") == "1"
    )
    assert (
        _figure(html, "total", "replied") == "1"
        and _figure(html, "total", "meetings_booked") == "1"
    )
    assert (
        "<polyline" in html
        and 'class="funnel"' in html
        and "<script>" not in html.split("</head>")[1]
    )
    assert "compared with 2026-03-01 – 2026-03-01" in html
    link = re.search(r'href="(/reports/rows/messages\?[^"]+)"', html).group(1).replace("&amp;", "&")
    rows = list(csv.DictReader(io.StringIO(ui.client.get(link).text)))
    assert len(rows) == 4 and {r["mailbox_owner_id"] for r in rows} == {
        str(day.rep_id),
        str(day.other_id),
    }
    report = ui.client.get(f"/reports/csv?by=rep&{DAY}")
    assert report.headers["content-type"].startswith("text/csv") and "All" in report.text

    ui.client.post("/logout", data={"csrf_token": ui.csrf("/contacts")})
    ui.login("rep@example.com", "pw")  # a member: their own work, and no one else's
    mine = ui.client.get(f"/reports?by=rep&{DAY}").text
    assert "your own work" in mine and f'data-key="{day.other_id}"' not in mine
    assert ui.client.get(f"/reports?by=rep&{DAY}&rep={day.other_id}").status_code == 403
    for bad in ("start=2026-02-31", "start=2026-03-05&end=2026-03-01", "by=nothing", "rep=abc"):
        refused = ui.client.get(f"/reports?{bad}")
        assert refused.status_code == 422 and "Traceback" not in refused.text, bad
