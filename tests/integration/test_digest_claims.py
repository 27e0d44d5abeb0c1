"""The daily digest as the claim takes it (services/delivery/claims.py), driven directly on
an injected clock, on both databases: which digests a claim takes and in what order,
what a day with nothing left to do records, and how each task's contact is named.

The world's rep is in New York; the digest hour is 8:00 there, 13:00 UTC on these days.
tests/integration/test_task_reminders.py covers the same through the worker and a real
SMTP server; these tests are the claim's own, fast enough for mutation testing.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default

from cadenza.domain.enums import DigestStatus, TaskStatus
from cadenza.services.delivery.compose import DIGEST_MAX_LINES
from cadenza.services.enrollment import reminders
from cadenza.store.models import Message, Task, TaskDigest
from tests.support.rows import claim, one, rows, write

MONDAY_8AM_NY = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def digests_on(ctx, world):
    reminders.update_preferences(
        ctx, world.user.id, {"timing": "none", "digest": True, "digest_hour": 8}
    )


def add_tasks(ctx, world, *tasks):
    """Open tasks of the world's rep: (title, due_at, contact or None) each; their ids."""
    with ctx.db.transaction() as session:
        made = [
            Task(
                owner_id=world.user.id,
                contact_id=contact.id if contact else None,
                type="call",
                title=title,
                due_at=due_at,
                status=TaskStatus.OPEN,
                created_at=ctx.clock.now(),
            )
            for title, due_at, contact in tasks
        ]
        session.add_all(made)
        session.flush()
        return [task.id for task in made]


def make_digest_at(ctx, when):
    """The digest of the local day whose digest hour `when` is, recorded pending."""
    ctx.clock.set(when)
    reminders.make_due_digests(ctx)
    [digest] = rows(ctx, TaskDigest, TaskDigest.due_at == when)
    return digest


def table_rows(message_id, ctx):
    """The digest's table: (due, task, contact) of each line, as the user reads them."""
    raw = one(ctx, Message, message_id).raw.encode("utf-8")
    body = BytesParser(policy=default).parsebytes(raw).get_body(("html",)).get_content()
    found = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", body)
    return [tuple(html.unescape(cell) for cell in line) for line in found], body


def test_a_day_left_with_no_tasks_records_why_and_the_next_days_digest_is_still_claimed(ctx, world):
    digests_on(ctx, world)
    mondays, tuesdays = add_tasks(
        ctx,
        world,
        ("Call Ann", MONDAY_8AM_NY - timedelta(hours=1), None),
        ("Call Bo", MONDAY_8AM_NY + DAY - timedelta(hours=1), None),
    )
    monday = make_digest_at(ctx, MONDAY_8AM_NY)
    tuesday = make_digest_at(ctx, MONDAY_8AM_NY + DAY)  # no worker ran in between
    write(ctx, Task, mondays, status=TaskStatus.COMPLETED)  # Monday's only task, done since

    [claimed] = claim(ctx, "w", world.mailbox.id)

    now = MONDAY_8AM_NY + DAY
    empty, sent = one(ctx, TaskDigest, monday.id), one(ctx, TaskDigest, tuesday.id)
    assert (empty.status, empty.task_count, empty.claimed_at, empty.message_id) == (
        DigestStatus.NO_TASKS,
        0,
        now,
        None,
    )
    assert (sent.status, sent.task_count, sent.claimed_at) == (DigestStatus.CLAIMED, 1, now)
    assert (claimed.digest_id, claimed.message_pk) == (tuesday.id, sent.message_id)
    assert (claimed.enrollment_id, claimed.run_id, claimed.task_id) == (None, None, None)
    assert claimed.recipient == world.user.email == one(ctx, Message, sent.message_id).to_email
    assert claimed.sender == world.mailbox.from_email
    lines, _ = table_rows(sent.message_id, ctx)
    assert [task for _, task, _ in lines] == ["Call Bo"] and tuesdays
    assert now <= claimed.slot < now + timedelta(minutes=5)
    assert [m.id for m in rows(ctx, Message)] == [sent.message_id]  # none for Monday


def test_a_claim_takes_the_oldest_digests_first_and_no_more_than_its_batch(ctx, world):
    digests_on(ctx, world)
    add_tasks(ctx, world, ("Call Ann", MONDAY_8AM_NY - timedelta(hours=2), None))
    days = [make_digest_at(ctx, MONDAY_8AM_NY + n * DAY) for n in range(3)]

    taken = []
    for _ in days:
        [one_digest] = claim(ctx, "w", world.mailbox.id, batch_size=1)
        taken.append(one_digest.digest_id)
        left = [d.id for d in rows(ctx, TaskDigest) if d.status == DigestStatus.PENDING]
        assert left == [d.id for d in days if d.id not in taken]
    assert taken == [d.id for d in days]
    assert claim(ctx, "w", world.mailbox.id) == []


def test_a_digest_not_due_yet_waits(ctx, world):
    digests_on(ctx, world)
    add_tasks(ctx, world, ("Call Ann", MONDAY_8AM_NY, None))
    digest = make_digest_at(ctx, MONDAY_8AM_NY)
    ctx.clock.set(MONDAY_8AM_NY - timedelta(seconds=1))  # recorded early, not yet due
    assert claim(ctx, "w", world.mailbox.id) == []
    assert one(ctx, TaskDigest, digest.id).status == DigestStatus.PENDING
    ctx.clock.set(MONDAY_8AM_NY)
    assert [c.digest_id for c in claim(ctx, "w", world.mailbox.id)] == [digest.id]


def test_each_line_names_the_contact_as_far_as_the_contact_has_a_name(ctx, world):
    digests_on(ctx, world)
    both = world.contact("ann@corp.example", firstname="Ann", lastname="Lee")
    first = world.contact("bo@corp.example", firstname="Bo")
    last = world.contact("cy@corp.example", firstname=None, lastname="Cy")
    nameless = world.contact("dee@corp.example", firstname=None)
    due = MONDAY_8AM_NY - timedelta(hours=4)  # 04:00 in New York, in this order
    add_tasks(
        ctx,
        world,
        ("Call Ann", due, both),
        ("Call Bo", due + timedelta(minutes=1), first),
        ("Call Cy", due + timedelta(minutes=2), last),
        ("Call Dee", due + timedelta(minutes=3), nameless),
        ("Plan the week", due + timedelta(minutes=4), None),
    )
    make_digest_at(ctx, MONDAY_8AM_NY)

    [claimed] = claim(ctx, "w", world.mailbox.id)

    lines, _ = table_rows(claimed.message_pk, ctx)
    assert [(task, contact) for _, task, contact in lines] == [
        ("Call Ann", "Ann Lee <ann@corp.example>"),
        ("Call Bo", "Bo <bo@corp.example>"),
        ("Call Cy", "Cy <cy@corp.example>"),
        ("Call Dee", "dee@corp.example"),
        ("Plan the week", ""),
    ]
    assert [when for when, _, _ in lines] == ["04:00", "04:01", "04:02", "04:03", "04:04"]


def test_a_long_day_lists_its_first_tasks_by_due_time_and_counts_the_rest(ctx, world):
    digests_on(ctx, world)
    start = MONDAY_8AM_NY - timedelta(hours=8)  # 00:00 in New York
    count = DIGEST_MAX_LINES + 2
    # written latest first, so that only the order by due time lists them in order
    tasks = [(f"Task {n:03}", start + timedelta(minutes=n), None) for n in range(count)]
    add_tasks(ctx, world, *reversed(tasks))
    make_digest_at(ctx, MONDAY_8AM_NY)

    [claimed] = claim(ctx, "w", world.mailbox.id)

    lines, body = table_rows(claimed.message_pk, ctx)
    assert [task for _, task, _ in lines] == [f"Task {n:03}" for n in range(DIGEST_MAX_LINES)]
    assert "<p>And 2 more.</p>" in body
    digest = one(ctx, TaskDigest, claimed.digest_id)
    assert digest.task_count == count
    subject = BytesParser(policy=default).parsebytes(claimed.raw)["Subject"]
    assert subject == f"Your tasks for Mon 02 Mar: {count} tasks"


def test_the_day_counted_is_the_users_local_day(ctx, world):
    digests_on(ctx, world)
    late = MONDAY_8AM_NY + timedelta(hours=15, minutes=30)  # Mon 23:30 in New York, Tue in UTC
    add_tasks(ctx, world, ("Call Ann late", late, None))
    make_digest_at(ctx, MONDAY_8AM_NY)

    [claimed] = claim(ctx, "w", world.mailbox.id)

    lines, _ = table_rows(claimed.message_pk, ctx)
    assert lines == [("23:30", "Call Ann late", "")]
    assert one(ctx, TaskDigest, claimed.digest_id).task_count == 1


def test_a_user_without_a_time_zone_has_the_installations_day(ctx, world):
    from cadenza.store.models import User

    write(ctx, User, world.user.id, timezone=None)  # the settings' default: UTC here
    digests_on(ctx, world)
    add_tasks(ctx, world, ("Call Ann", MONDAY_8AM_NY + timedelta(hours=10), None))  # 23:00 UTC
    ctx.clock.set(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    reminders.make_due_digests(ctx)

    [claimed] = claim(ctx, "w", world.mailbox.id)

    lines, _ = table_rows(claimed.message_pk, ctx)
    assert lines == [("23:00", "Call Ann", "")]


def test_every_mailbox_with_a_due_digest_is_listed_and_none_for_a_deleted_mailbox(ctx, world):
    from cadenza.services.accounts.mailboxes import create_mailbox
    from cadenza.services.accounts.users import create_user
    from cadenza.services.delivery.claims import mailboxes_with_due_email
    from cadenza.store.models import Mailbox

    other = create_user(ctx, "bo@example.com", timezone="America/New_York")
    theirs = create_mailbox(ctx, other.id, "bo@example.com")
    gone = create_user(ctx, "cy@example.com", timezone="America/New_York")
    gone_box = create_mailbox(ctx, gone.id, "cy@example.com")
    for user_id in (world.user.id, other.id, gone.id):
        reminders.update_preferences(ctx, user_id, {"timing": "none", "digest": True})
        with ctx.db.transaction() as session:
            session.add(
                Task(owner_id=user_id, type="call", title="Call", due_at=MONDAY_8AM_NY,
                     status=TaskStatus.OPEN, created_at=ctx.clock.now())
            )  # fmt: skip
    ctx.clock.set(MONDAY_8AM_NY)
    assert reminders.make_due_digests(ctx) == 3
    with ctx.db.transaction() as session:
        session.delete(session.get(Mailbox, gone_box.id))  # its digest keeps no mailbox

    assert sorted(mailboxes_with_due_email(ctx)) == sorted([world.mailbox.id, theirs.id])
