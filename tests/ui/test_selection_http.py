"""A contacts selection larger than a page and than the bulk limit (issue 11 item 8):
"select all N matching" gets the filter's ids, and the dialog enrolls them in batches
of the bulk limit with the usual limits, a result per contact; SQLite and PostgreSQL."""

from __future__ import annotations

import re

from sqlalchemy import select

from cadenza.store.models import Contact, Enrollment, User
from cadenza.web.ui import contacts as contacts_page


def _bulk(ctx, count):
    from tests.integration.test_list_enrollment import seed_contacts

    return seed_contacts(ctx, count)


def test_select_all_matching_returns_the_filters_ids(rep, ctx, world, monkeypatch):
    ids = _bulk(ctx, 30)
    with ctx.db.transaction() as session:
        session.get(Contact, ids[0]).unsubscribed_at = ctx.clock.now()
    index = rep.client.get("/contacts?status=reachable")
    button = re.search(r'id="select-matching" data-url="([^"]+)" data-total="(\d+)"', index.text)
    assert button and button.group(2) == "29"
    url = button.group(1).replace("&amp;", "&")
    assert "status=reachable" in url
    answer = rep.client.get(url).json()
    assert answer["total"] == 29 and not answer["capped"]
    assert sorted(answer["ids"]) == sorted(ids[1:])
    monkeypatch.setattr(contacts_page, "MAX_CONTACTS_IN_URL", 10)
    capped = rep.client.get(url).json()
    assert (len(capped["ids"]), capped["total"], capped["capped"]) == (10, 29, True)
    assert rep.client.get("/contacts/ids?status=gone").status_code == 422
    assert 'id="select-matching"' not in rep.client.get("/contacts?q=nobody-matches").text


def test_the_dialog_enrolls_a_selection_past_the_bulk_limit_in_batches(rep, ctx, world):
    ids = _bulk(ctx, 60)
    with ctx.db.transaction() as session:
        session.get(User, world.user.id).daily_enrollment_limit = 55
    form = {"csrf_token": rep.token, "sequence": str(world.sequence.id), "send": "now",
            "follow_up_days": "weekdays", "thread_follow_ups": "on",
            "contact": [str(i) for i in ids]}  # fmt: skip
    check = rep.client.post("/enroll/check", data=form)
    assert check.status_code == 200 and "bulk_limit" not in check.text
    assert check.text.count('class="ok"') == 55  # the dry run counts the daily limit too
    done = rep.client.post("/enroll", data=form)
    assert done.status_code == 200, done.text[:500]
    assert "55 enrolled, 5 not enrolled" in done.text
    assert done.text.count("you reached your daily limit") == 5
    with ctx.db.read() as session:
        enrolled = list(session.scalars(select(Enrollment.contact_id).order_by(Enrollment.id)))
    assert enrolled == ids[:55]
