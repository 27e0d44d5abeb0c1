"""Enrollment through the service, on SQLite and PostgreSQL: every rule and refusal."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cadenza.domain.enums import EnrollmentState
from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.enrollment.progress import (
    after_step_completed,
    after_steps_completed,
    locked_progress,
)
from cadenza.store.models import (
    AuditEntry,
    BlockedAddress,
    Contact,
    Enrollment,
    Mailbox,
    StepRun,
)
from tests.conftest import MISSING_ID, enroll_ids


def request(world, contact_ids, **options):
    options.setdefault("sequence_id", world.sequence.id)
    options.setdefault("user_id", world.user.id)
    return EnrollRequest(contacts=[ContactRequest(c) for c in contact_ids], **options)


def counts(ctx):
    with ctx.db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(Enrollment)),
            session.scalar(select(func.count()).select_from(StepRun)),
        )


def refuse(ctx, req, code):
    before = counts(ctx)
    with pytest.raises(CadenzaError) as caught:
        enroll(ctx, req)
    assert caught.value.code == code
    assert counts(ctx) == before
    return caught.value


def test_enrolls_a_contact_with_snapshot_and_first_step_due_now(ctx, world):
    contact = world.contact(timezone="Europe/Berlin")
    [result] = enroll(ctx, request(world, [contact.id]))
    assert result.ok and result.enrollment_id
    assert result.timezone == "Europe/Berlin"
    # step 1 now; step 2 +3 days at the same local time (Mon 10:00 Berlin -> Thu 10:00);
    # step 3 +3 days -> Sunday -> weekdays moves it to Monday.
    assert [s.step for s in result.schedule] == [1, 2, 3]
    assert result.schedule[0].due_at == ctx.clock.now()
    assert result.schedule[1].due_at.isoformat() == "2026-03-05T10:00:00+01:00"
    assert result.schedule[2].due_at.isoformat() == "2026-03-09T10:00:00+01:00"
    with ctx.db.transaction() as session:
        enrollment = session.get(Enrollment, result.enrollment_id)
        assert enrollment.state == "active" and not enrollment.bulk
        assert [s["position"] for s in enrollment.steps_snapshot] == [1, 2, 3]
        [run] = session.scalars(select(StepRun)).all()
        assert (run.step_position, run.status, run.due_at) == (1, "pending", ctx.clock.now())


def test_timezone_falls_back_from_request_to_contact_to_sender_to_default(ctx, world, settings):
    with_tz = world.contact("a@x.example", timezone="Asia/Tokyo")
    without_tz = world.contact("b@x.example")
    results = enroll(ctx, request(world, [with_tz.id, without_tz.id], dry_run=True))
    assert [r.timezone for r in results] == ["Asia/Tokyo", "America/New_York"]
    [forced] = enroll(ctx, request(world, [with_tz.id], timezone="Pacific/Chatham", dry_run=True))
    assert forced.timezone == "Pacific/Chatham"
    plain = create_user(ctx, "plain@example.com")
    create_mailbox(ctx, plain.id, "plain@example.com")
    [default] = enroll(ctx, request(world, [without_tz.id], user_id=plain.id, dry_run=True))
    assert default.timezone == settings.default_timezone


def test_dry_run_writes_nothing_and_reports_everything(ctx, world):
    good = world.contact("good@x.example")
    no_name = world.contact("anon@x.example", firstname=None)
    results = enroll(ctx, request(world, [good.id, no_name.id], dry_run=True))
    assert results[0].ok and results[0].enrollment_id is None and len(results[0].schedule) == 3
    assert results[1].code == "missing_token_values"
    assert results[1].missing_tokens == ["contact.firstname"]
    assert counts(ctx) == (0, 0)


def test_token_values_fill_missing_tokens(ctx, world):
    no_name = world.contact("anon@x.example", firstname=None)
    req = request(world, [no_name.id])
    req.contacts[0].token_values = {"firstname": "Sam"}
    [result] = enroll(ctx, req)
    assert result.ok
    with ctx.db.transaction() as session:
        assert session.get(Enrollment, result.enrollment_id).token_values == {
            "contact.firstname": "Sam"
        }


def test_send_at_sets_step_one_and_naive_send_at_is_local(ctx, world):
    contact = world.contact(timezone="Asia/Kathmandu")
    aware = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # a Saturday: step 1 is not moved
    [result] = enroll(ctx, request(world, [contact.id], send_at=aware, dry_run=True))
    assert result.schedule[0].due_at == aware
    naive = datetime(2026, 3, 3, 9, 0)
    [local] = enroll(ctx, request(world, [contact.id], send_at=naive, dry_run=True))
    assert local.schedule[0].due_at.isoformat() == "2026-03-03T09:00:00+05:45"


def test_send_at_in_the_past_is_refused(ctx, world):
    contact = world.contact()
    past = ctx.clock.now() - timedelta(minutes=1)
    refuse(ctx, request(world, [contact.id], send_at=past), "send_at_in_past")
    # A naive time already past in the contact's zone is refused for that contact only.
    naive_past = (ctx.clock.now() - timedelta(hours=6)).replace(tzinfo=None)
    [result] = enroll(ctx, request(world, [contact.id], send_at=naive_past, timezone="UTC"))
    assert result.code == "send_at_in_past"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"sequence_id": MISSING_ID}, "sequence_not_found"),
        ({"start_step": 0}, "invalid_start_step"),
        ({"start_step": 4}, "invalid_start_step"),
        ({"timezone": "Mars/Phobos"}, "invalid_timezone"),
        ({"mailbox_id": MISSING_ID}, "mailbox_not_found"),
    ],
)
def test_whole_request_errors(ctx, world, options, code):
    contact = world.contact()
    refuse(ctx, request(world, [contact.id], **options), code)


def test_bulk_limit_and_empty_request(ctx, world, settings):
    refuse(
        ctx, request(world, list(range(1, settings.enroll_bulk_limit + 2))), "bulk_limit_exceeded"
    )
    refuse(ctx, request(world, []), "no_contacts")


def test_sequence_without_steps_is_refused(ctx, world):
    empty = world.make_sequence(steps=[], name="Empty")
    refuse(ctx, request(world, [world.contact().id], sequence_id=empty.id), "sequence_has_no_steps")


def test_mailbox_rules(ctx, world):
    contact = world.contact()
    other = create_user(ctx, "other@example.com")
    theirs = create_mailbox(ctx, other.id, "other@example.com")
    refuse(ctx, request(world, [contact.id], mailbox_id=theirs.id), "mailbox_not_yours")
    second = create_mailbox(ctx, world.user.id, "rep2@example.com")
    refuse(ctx, request(world, [contact.id]), "mailbox_required")
    with ctx.db.transaction() as session:
        session.get(Mailbox, second.id).connected = False
    refuse(ctx, request(world, [contact.id], mailbox_id=second.id), "mailbox_disconnected")
    nobox = create_user(ctx, "nobox@example.com")
    refuse(ctx, request(world, [contact.id], user_id=nobox.id), "mailbox_not_found")


def test_a_request_wrong_in_several_ways_gets_its_first_error(ctx, world):
    """The user, the sequence and the mailbox are read together (one statement), then
    checked in order: who may enroll, then the sequence, then the mailbox."""
    contact = world.contact()
    viewer = create_user(ctx, "viewer@example.com", can_enroll=False)
    other = create_user(ctx, "other@example.com")
    theirs = create_mailbox(ctx, other.id, "other@example.com")
    missing = {"sequence_id": MISSING_ID, "mailbox_id": MISSING_ID}
    refuse(ctx, request(world, [contact.id], user_id=viewer.id, **missing), "permission_denied")
    refuse(ctx, request(world, [contact.id], **missing), "sequence_not_found")
    wrong_box = {"sequence_id": MISSING_ID, "mailbox_id": theirs.id}
    refuse(ctx, request(world, [contact.id], **wrong_box), "sequence_not_found")
    refuse(ctx, request(world, [contact.id], start_step=9, mailbox_id=MISSING_ID),
           "invalid_start_step")  # fmt: skip
    refused = refuse(ctx, request(world, [contact.id], user_id=MISSING_ID), "user_not_found")
    assert refused.details == {"id": MISSING_ID}
    # a user who owns several mailboxes is told all of them, in id order
    later = [create_mailbox(ctx, other.id, f"other{i}@example.com").id for i in range(3)]
    refused = refuse(ctx, request(world, [contact.id], user_id=other.id), "mailbox_required")
    assert refused.details["mailbox_ids"] == [theirs.id, *later]


def test_permission_denied(ctx, world):
    viewer = create_user(ctx, "viewer@example.com", can_enroll=False)
    refuse(ctx, request(world, [world.contact().id], user_id=viewer.id), "permission_denied")


def test_per_contact_refusals_while_valid_contacts_enroll(ctx, world):
    ok = world.contact("ok@x.example")
    no_email = world.contact(None)
    bounced = world.contact("bounced@x.example")
    unsubscribed = world.contact("unsub@x.example")
    blocked = world.contact("blocked@x.example")
    domain_blocked = world.contact("someone@spam.example")
    with ctx.db.transaction() as session:
        session.get(Contact, bounced.id).bounced_at = ctx.clock.now()
        session.get(Contact, unsubscribed.id).unsubscribed_at = ctx.clock.now()
        session.get(Contact, blocked.id).blocked = True
        session.add(BlockedAddress(pattern="@spam.example", created_at=ctx.clock.now()))
    ids = [
        ok.id,
        no_email.id,
        bounced.id,
        unsubscribed.id,
        blocked.id,
        domain_blocked.id,
        MISSING_ID,
        ok.id,
    ]
    results = enroll(ctx, request(world, ids))
    assert [(r.contact_id, r.code) for r in results] == [
        (ok.id, None),
        (no_email.id, "missing_email"),
        (bounced.id, "bounced"),
        (unsubscribed.id, "unsubscribed"),
        (blocked.id, "blocked"),
        (domain_blocked.id, "blocked"),
        (MISSING_ID, "contact_not_found"),
        (ok.id, "duplicate_contact"),
    ]
    assert all(r.message for r in results[1:])
    assert counts(ctx) == (1, 1)
    with ctx.db.transaction() as session:
        assert session.scalar(select(Enrollment.bulk))


def test_one_sequence_at_a_time(ctx, world):
    contact = world.contact()
    [first] = enroll(ctx, request(world, [contact.id]))
    [again] = enroll(ctx, request(world, [contact.id]))
    assert again.code == "already_enrolled" and "this sequence" in again.message
    other = world.make_sequence(name="Other")
    [elsewhere] = enroll(ctx, request(world, [contact.id], sequence_id=other.id))
    assert elsewhere.code == "in_another_sequence" and "Follow-up" in elsewhere.message
    assert elsewhere.details["sequence_id"] == world.sequence.id and elsewhere.overridable
    enrollment_control.unenroll(ctx, first.enrollment_id)
    [now_ok] = enroll(ctx, request(world, [contact.id], sequence_id=other.id))
    assert now_ok.ok


def test_account_setting_allows_several_sequences(ctx, world):
    ctx.settings.allow_multiple_sequences = True
    contact = world.contact()
    other = world.make_sequence(name="Other")
    assert enroll(ctx, request(world, [contact.id]))[0].ok
    assert enroll(ctx, request(world, [contact.id], sequence_id=other.id))[0].ok
    assert enroll(ctx, request(world, [contact.id]))[0].code == "already_enrolled"


def test_daily_enrollment_limit_counts_the_users_local_day(ctx, world):
    ctx.settings.daily_enrollment_limit = 2
    contacts = world.contacts(3)
    results = enroll(ctx, request(world, [c.id for c in contacts]))
    assert [r.code for r in results] == [None, None, "daily_enrollment_limit"]
    # 09:00 UTC is 04:00 in New York: the user's next local day starts at 05:00 UTC tomorrow.
    ctx.clock.advance(timedelta(hours=19, minutes=59))
    assert enroll(ctx, request(world, [contacts[2].id]))[0].code == "daily_enrollment_limit"
    ctx.clock.advance(timedelta(minutes=2))
    assert enroll(ctx, request(world, [contacts[2].id]))[0].ok


def test_start_step_and_step_edits_are_snapshotted(ctx, world):
    contact = world.contact()
    req = request(world, [contact.id], start_step=2)
    req.contacts[0].step_edits = {"2": {"body": "<p>Custom bump<script>x()</script></p>"}}
    [result] = enroll(ctx, req)
    assert [s.step for s in result.schedule] == [2, 3]
    with ctx.db.transaction() as session:
        enrollment = session.get(Enrollment, result.enrollment_id)
        assert enrollment.start_step == 2
        assert enrollment.steps_snapshot[1]["body"] == "<p>Custom bump</p>"
        assert session.scalar(select(StepRun.step_position)) == 2


def test_one_contacts_edits_are_theirs_alone_in_a_bulk_enrollment(ctx, world):
    """Contacts without edits share the sequence's steps, worked out once a request
    (services/enrollment/enroll.py): an edit of one contact, before or after them,
    changes that contact's steps and token check only."""
    ann, bob, cid, dan = (world.contact(f"{n}@corp.example") for n in ("ann", "bob", "cid", "dan"))
    req = request(world, [ann.id, bob.id, cid.id, dan.id])
    req.contacts[1].step_edits = {"2": {"body": "<p>How is {{ contact.company }}?</p>"}}
    req.contacts[3].step_edits = {"2": {"body": "<p>Just for Dan</p>"}}
    results = enroll(ctx, req)
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].missing_tokens == ["contact.company"]
    with ctx.db.read() as session:
        bodies = {
            e.contact_id: e.steps_snapshot[1]["body"] for e in session.scalars(select(Enrollment))
        }
    assert bodies == {ann.id: bodies[cid.id], cid.id: bodies[cid.id], dan.id: "<p>Just for Dan</p>"}
    assert bodies[ann.id] != "<p>Just for Dan</p>"


def test_bad_step_edits_are_refused_per_contact(ctx, world):
    contact = world.contact()
    for edits in (
        {"9": {"body": "x"}},
        {"1": {"delay_days": 0}},
        {"1": {"subject": "{{ x.__class__ }}"}},
    ):
        req = request(world, [contact.id])
        req.contacts[0].step_edits = edits
        [result] = enroll(ctx, req)
        assert result.code == "invalid_step_edit", edits
    assert counts(ctx) == (0, 0)


def test_editing_the_sequence_does_not_change_running_enrollments(ctx, world):
    from cadenza.services.sequences.catalog import replace_sequence

    contact = world.contact()
    [result] = enroll(ctx, request(world, [contact.id]))
    replace_sequence(
        ctx,
        world.sequence.id,
        name="Changed",
        settings={"follow_up_days": "every_day"},
        steps=[{"type": "email", "subject": "New", "body": "<p>New</p>"}],
    )
    with ctx.db.transaction() as session:
        enrollment = session.get(Enrollment, result.enrollment_id)
        assert len(enrollment.steps_snapshot) == 3
        assert enrollment.steps_snapshot[0]["subject"] == "Hi {{ contact.firstname }}"
        assert enrollment.settings_snapshot["follow_up_days"] == "weekdays"


def test_enrollment_is_audited(ctx, world):
    [result] = enroll(ctx, request(world, [world.contact().id]))
    with ctx.db.transaction() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.subject_id == result.enrollment_id)
        ).all()
    assert "enrollment.create" in actions


def test_a_step_scheduled_shows_in_the_runs_its_session_had_already_read(ctx, world):
    """Step runs are written as plain rows (progress.add_step_runs), not ORM objects: an
    enrollment whose runs the session had read sees the new one at its next read."""
    [eid] = enroll_ids(world, [world.contact()])
    with ctx.db.transaction() as session:
        enrollment = session.get_one(Enrollment, eid)
        assert [r.step_position for r in enrollment.step_runs] == [1]
        after_step_completed(session, enrollment, 1, ctx.clock.now())
        assert sorted(r.step_position for r in enrollment.step_runs) == [1, 2]


def test_an_enrollment_finished_by_its_last_step_reads_finished_in_its_session(ctx, world):
    """The end is written by a plain statement (progress.finish_enrollments): the
    session's object of the enrollment says so without a read, so what the use case
    returns and flushes after it is the finished enrollment."""
    [eid] = enroll_ids(world, [world.contact()])
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        enrollment = session.get_one(Enrollment, eid)
        after_step_completed(session, enrollment, len(enrollment.steps_snapshot), now)
        assert (enrollment.state, enrollment.ended_at) == (EnrollmentState.FINISHED, now)
    with ctx.db.read() as session:
        assert session.get_one(Enrollment, eid).state == EnrollmentState.FINISHED


def test_the_worker_moves_plain_rows_forward_and_the_sessions_object_sees_it(ctx, world):
    """The worker reads the enrollments it moves forward as plain rows
    (progress.locked_progress); a session that had the enrollment's object, as a late
    send's slow path has, sees the run scheduled and then the end."""
    [eid] = enroll_ids(world, [world.contact()])
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        enrollment = session.get_one(Enrollment, eid)
        assert [r.step_position for r in enrollment.step_runs] == [1]
        [(row_id, row)] = locked_progress(session, [eid, eid]).items()
        assert (row_id, row.state, row.steps_snapshot) == (
            eid,
            EnrollmentState.ACTIVE,
            enrollment.steps_snapshot,
        )
        after_steps_completed(session, [(row, 1)], now)
        assert sorted(r.step_position for r in enrollment.step_runs) == [1, 2]
        last = len(row.steps_snapshot)
        after_steps_completed(session, [(row, last)], now)
        assert enrollment.state == EnrollmentState.FINISHED
