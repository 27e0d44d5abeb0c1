"""What the enrollment views show a person: step titles filled for the contact before
anything is sent, bounced emails as bounced, bulk results naming the contacts."""

from __future__ import annotations

from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.enrollment.views import get_enrollment
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Enrollment
from tests.conftest import MISSING_ID, enroll_ids
from tests.support.signals import send_first_emails

TOKENS = [
    {
        "type": "email",
        "subject": "Hi {{ contact.firstname }} from {{ sender.firstname }}",
        "body": "<p>Hello</p>",
    },
    {"type": "email", "delay_days": 1, "thread_with_step": 1, "body": "<p>Bump</p>"},
    {
        "type": "task",
        "delay_days": 1,
        "task_type": "call",
        "task_title": "Call {{ contact.firstname }} about {{ contact.project }}",
    },
]


def test_pending_and_projected_titles_are_filled_for_the_contact(ctx, world):
    sequence = world.make_sequence(steps=TOKENS)
    contact = world.contact(project="Atlas")
    [enrollment_id] = enroll_ids(world, [contact], sequence=sequence)
    view = get_enrollment(ctx, enrollment_id)
    assert [(s.status, s.title) for s in view.steps] == [
        ("pending", "Hi Ann from Riley"),
        ("projected", "reply in the thread of step 1"),
        ("projected", "Call Ann about Atlas"),
    ]


def test_titles_use_the_enrollments_own_token_values(ctx, world):
    sequence = world.make_sequence(steps=TOKENS)
    contact = world.contact(firstname=None)
    [result] = enroll(
        ctx,
        EnrollRequest(
            sequence.id,
            world.user.id,
            [ContactRequest(contact.id, token_values={"firstname": "Bo", "project": "Nimbus"})],
        ),
    )
    assert result.ok, result
    titles = [s.title for s in get_enrollment(ctx, result.enrollment_id).steps]
    assert titles[0] == "Hi Bo from Riley"
    assert titles[2] == "Call Bo about Nimbus"


def test_a_title_that_no_longer_renders_falls_back_to_a_readable_label(ctx, world):
    sequence = world.make_sequence(steps=TOKENS)
    [enrollment_id] = enroll_ids(world, [world.contact(project="Atlas")], sequence=sequence)
    with ctx.db.transaction() as session:  # the project value is gone since enrolling
        row = session.get(Enrollment, enrollment_id)
        steps = [dict(s) for s in row.steps_snapshot]
        steps[2]["task_title"] = "Call {{ contact.deleted_token }}"
        steps[0]["subject"] = "Hi {{ contact.firstname | nosuchfilter }}"
        row.steps_snapshot = steps
    titles = [s.title for s in get_enrollment(ctx, enrollment_id).steps]
    assert titles[0] == "Hi ‹contact.firstname›"  # never template code (issue 11 item 12)
    assert titles[2] == "Call ‹contact.deleted_token›"


def test_a_sent_step_shows_the_subject_it_went_out_with_and_a_bounce(ctx, world, worker):
    sequence = world.make_sequence(steps=TOKENS)
    sent = send_first_emails(ctx, world, worker, ["ann", "ben"], sequence, project="Atlas")
    (_, bounced_id, message) = sent["ann"]
    (_, fine_id, _) = sent["ben"]
    outcome = record_signal(
        ctx, Signal(EventKind.BOUNCE, dedupe_key="b1", message_pk=message.id, hard=True)
    )
    assert outcome.unenrolled == [bounced_id]

    first = get_enrollment(ctx, bounced_id).steps[0]
    assert first.status == "sent"  # the run did leave: it stays "sent" (docs/signals.md)
    assert first.bounced_at == ctx.clock.now()
    assert (first.shown_status, first.title) == ("bounced", "Hi Ann from Riley")

    line = get_enrollment(ctx, fine_id).steps[0]
    assert (line.status, line.shown_status, line.bounced_at) == ("sent", "sent", None)


def test_bulk_outcomes_name_the_contacts_but_not_behind_not_found(ctx, world):
    named = world.contact("cy@corp.example", firstname="Cy", lastname="Young")
    nameless = world.contact("zed@corp.example", firstname=None)
    plain = world.make_sequence(steps=[{"type": "email", "subject": "Hello", "body": "<p>Hi</p>"}])
    first, second = enroll_ids(world, [named, nameless], sequence=plain)
    enrollment_control.pause(ctx, second)

    def refuse_first(ctx, enrollment_id):
        if enrollment_id == first:  # as the web layer answers for someone else's enrollment
            enrollment_control.pause(ctx, MISSING_ID)
        enrollment_control.pause(ctx, enrollment_id)

    outcomes = enrollment_control.for_many(enrollment_control.pause, ctx, [first, second, 777])
    assert [(o.enrollment_id, o.ok, o.code, o.contact_id, o.contact_name) for o in outcomes] == [
        (first, True, None, named.id, "Cy Young"),
        (second, False, "invalid_state", nameless.id, "zed@corp.example"),
        (777, False, "enrollment_not_found", None, None),
    ]
    [hidden] = enrollment_control.for_many(refuse_first, ctx, [first])
    assert (hidden.code, hidden.contact_name) == ("enrollment_not_found", None)
    with ctx.db.read() as session:
        assert session.scalars(select(Enrollment.state).order_by(Enrollment.id)).all() == [
            "paused",
            "paused",
        ]
