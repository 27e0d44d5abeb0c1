"""Team reports over HTTP on both databases: figures that match an engine run, the
previous period, per rep by either basis, per step, CSV of a report and of its rows,
who sees what, and bad input refused with a clear error.

One team day (tests/support/reports.py) is built once per database for the module.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from tests.conftest import MISSING_ID, Api, World, assert_error
from tests.support.reports import run_team_day


@pytest.fixture(scope="module")
def scene(module_ctx):
    world = World(module_ctx)
    api = Api(module_ctx, world)
    day = run_team_day(module_ctx, world, other=api.users["other"])
    return api, day


def _rows(body):
    return {row["label"]: row for row in body["rows"]}


def test_per_sequence_figures_match_the_engine_run(scene):
    api, day = scene
    response = api.get("/reports/sequence", role="admin")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"]["end"] == api.ctx.clock.now().date().isoformat()
    calls = _rows(body)["Calls"]
    assert calls["key"] == day.sequence_id
    now = calls["current"]
    assert (now["enrolled"], now["sent"], now["contacts_emailed"]) == (4, 4, 4)
    assert (now["replied"], now["meetings_booked"], now["bounced"]) == (1, 1, 0)
    assert now["delivered"] == 4 and now["rates"]["reply_rate"] == 0.25
    assert now["calls"] == {"connected": 1, "no_answer": 1}  # the other rep's call is open
    assert now["tasks_done"] == sum(now["calls"].values())
    assert calls["previous"]["enrolled"] == 0 and calls["deltas"]["enrolled"] == 4
    assert calls["changes"]["enrolled"] is None  # nothing before: no relative change
    assert body["total"]["current"]["sent"] == sum(r["current"]["sent"] for r in body["rows"])


def test_per_rep_by_enroller_and_by_mailbox_owner(scene):
    api, day = scene
    for basis in ("enrolled_by", "mailbox_owner"):
        body = api.get(f"/reports/rep?basis={basis}&sequence={day.sequence_id}", role="viewer")
        assert body.status_code == 200, body.text
        by_key = {row["key"]: row["current"] for row in body.json()["rows"]}
        assert by_key[day.rep_id]["enrolled"] == 3 and by_key[day.other_id]["enrolled"] == 1
        assert by_key[day.other_id]["sent"] == 1


def test_the_next_period_compares_with_this_one(scene):
    api, _day = scene
    later = (api.ctx.clock.now() + timedelta(days=10)).date()
    body = api.get(f"/reports/sequence?end={later}&start={later - timedelta(days=9)}").json()
    calls = _rows(body)["Calls"]
    assert calls["current"]["enrolled"] == 0 and calls["previous"]["enrolled"] == 3
    assert calls["deltas"]["enrolled"] == -3 and calls["changes"]["enrolled"] == -1.0


def test_per_step_needs_its_sequence(scene):
    api, day = scene
    body = api.get(f"/reports/step?sequence={day.sequence_id}", role="admin").json()
    steps = _rows(body)
    assert steps["Step 1 (email)"]["current"]["sent"] == 4
    assert steps["Step 1 (email)"]["current"]["replied"] == 1
    assert_error(api.get("/reports/step"), 422, "validation_error")


def test_a_member_sees_only_their_own_work(scene):
    api, day = scene
    body = api.get("/reports/rep").json()
    assert body["own_work_only"] is True
    assert [row["key"] for row in body["rows"]] == [day.rep_id]
    assert_error(api.get(f"/reports/rep?rep={day.other_id}"), 403, "permission_denied")
    mine = api.get(f"/reports/sequence?rep={day.rep_id}").json()
    assert _rows(mine)["Calls"]["current"]["enrolled"] == 3


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("start=2026-02-30", 422, "validation_error"),
        ("start=yesterday", 422, "validation_error"),
        ("start=2026-03-10&end=2026-03-01", 422, "validation_error"),
        ("start=1970-01-01&end=1970-01-02", 422, "validation_error"),
        ("start=2000-01-01&end=2026-03-01", 422, "validation_error"),  # too long
        (f"rep={MISSING_ID}", 404, "user_not_found"),
        (f"sequence={MISSING_ID}", 404, "sequence_not_found"),
        ("rep=0", 422, "validation_error"),
        ("basis=manager", 422, "validation_error"),
    ],
)
def test_bad_input_is_refused(scene, query, status, code):
    api, _day = scene
    for path in ("/reports/sequence", "/reports/sequence/csv", "/reports/rows/messages"):
        assert_error(api.get(f"{path}?{query}", role="admin"), status, code)
    assert_error(api.get("/reports/template"), 422, "validation_error")
    assert_error(api.get("/reports/rows/contacts"), 422, "validation_error")


def test_no_token_no_report(scene):
    api, _day = scene
    assert_error(api.get("/reports/sequence", role=None), 401, "unauthenticated")
    assert_error(api.get("/reports/rows/tasks", role=None), 401, "unauthenticated")


def _csv(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text)))


def test_report_csv_has_each_figure_before_and_delta(scene):
    api, day = scene
    rows = _csv(api.get(f"/reports/sequence/csv?sequence={day.sequence_id}", role="admin"))
    assert [r["label"] for r in rows] == ["Calls", "All"]
    assert rows[0]["sent"] == "4" and rows[0]["sent_previous"] == "0"
    assert rows[0]["sent_delta"] == "4" and rows[0]["reply_rate"] == "0.25"


def test_row_exports_carry_outcomes_and_respect_the_policy(scene):
    api, day = scene
    enrollments = _csv(api.get("/reports/rows/enrollments", role="admin"))
    ours = {int(r["enrollment_id"]): r for r in enrollments}
    assert set(day.enrollment_ids) <= set(ours)
    assert ours[day.enrollment_ids[0]]["replied"] == "true"
    assert ours[day.enrollment_ids[1]]["meeting_booked"] == "true"
    assert ours[day.enrollment_ids[0]]["emails_sent"] == "1"
    messages = _csv(api.get(f"/reports/rows/messages?sequence={day.sequence_id}", role="viewer"))
    assert len(messages) == 4 and sum(int(m["replys"]) for m in messages) == 1
    tasks = _csv(api.get(f"/reports/rows/tasks?sequence={day.sequence_id}", role="admin"))
    assert {"no_answer"} <= {t["outcome"] for t in tasks}
    assert {t["status"] for t in tasks if t["owner_id"] == str(day.other_id)} == {"open"}
    # A member's export holds their own work only; another rep's is refused.
    mine = _csv(api.get("/reports/rows/messages"))
    assert {m["mailbox_owner_id"] for m in mine} == {str(day.rep_id)}
    assert_error(api.get(f"/reports/rows/tasks?rep={day.other_id}"), 403, "permission_denied")


def test_daily_replies_and_meetings(scene):
    api, day = scene
    series = api.get(f"/reports/sequence/daily?sequence={day.sequence_id}&start=2026-02-25")
    assert series.status_code == 200, series.text
    [row] = series.json()
    assert len(row["days"]) == len(row["replied"]) == 6
    assert sum(row["replied"]) == 1 and sum(row["meetings_booked"]) == 1
