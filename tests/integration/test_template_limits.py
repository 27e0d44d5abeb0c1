"""Template limits in the engine: a template that passes the save check with sample values
but blows a limit for one contact's values fails that one step, with template_limit, and
every other contact's email still goes out in the same tick (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment.views import get_enrollment
from cadenza.services.sequences.catalog import create_sequence
from cadenza.services.sequences.preview import readable
from cadenza.store.models import Enrollment, Message, StepRun
from tests.conftest import enroll_ids

# Two nested loops over the contact's company name: 14 x 14 iterations for the sample value
# ("Sample company") and for "Acme Widgets Ltd", 40,000 for a 200-character name.
NESTED = (
    "<p>Hi {{ contact.firstname }}</p><p>"
    "{% for a in contact.company %}{% for b in contact.company %}.{% endfor %}{% endfor %}</p>"
)


def _sender(ctx):
    user = create_user(ctx, "fast@example.com", firstname="Fay")
    mailbox = create_mailbox(ctx, user.id, "fast@example.com", per_minute_limit=100_000)
    return user, mailbox


def test_one_contact_over_a_limit_fails_alone_and_the_hundred_others_go_out(ctx, world):
    user, _ = _sender(ctx)
    sequence = create_sequence(
        ctx,
        user.id,
        "Nested loops",
        settings={"follow_up_days": "every_day"},
        steps=[{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": NESTED}],
    )
    others = [world.contact(f"c{i}@corp.example", company="Acme Widgets Ltd") for i in range(100)]
    hostile = world.contact("long@corp.example", company="Q" * 200)
    world.user = user  # enroll as the sender whose mailbox has room for everyone
    # one by one: the first steps of a bulk enrollment are spaced out on purpose
    ids = [enroll_ids(world, [c], sequence)[0] for c in [*others[:50], hostile, *others[50:]]]
    hostile_id = ids[50]

    worker = Worker(ctx, WorkerOptions(batch_size=500, webhooks=False), worker_id="limits")
    try:
        worker.tick()
    finally:
        worker.close()

    with ctx.db.read() as session:
        sent = session.scalars(select(Message.to_email).where(Message.status == "sent")).all()
        failed = session.scalars(select(StepRun).where(StepRun.status == "failed")).all()
        flagged = session.scalars(
            select(Enrollment.id).where(Enrollment.needs_attention.is_(True))
        ).all()
    assert sorted(sent) == sorted(c.email for c in others)
    assert [run.enrollment_id for run in failed] == [hostile_id]
    assert failed[0].last_error.startswith("could not render (template_limit):")
    assert "loops would run more than 10000 times" in failed[0].last_error
    assert flagged == [hostile_id]
    view = get_enrollment(ctx, hostile_id)
    assert view.enrollment.needs_attention
    assert view.steps[0].status == "failed"
    assert "template_limit" in view.steps[0].last_error


LONG_COMPANY = "Q" * 200
NESTED_SUBJECT = (
    "Hi {% for a in contact.company %}{% for b in contact.company %}{% endfor %}{% endfor %}"
)


def test_the_preview_reports_the_limit_for_that_contact_and_shows_the_rest(ctx, world):
    from cadenza.domain.steps import parse_steps
    from cadenza.services.sequences.preview import preview_steps

    hostile = world.contact("long@corp.example", company=LONG_COMPANY)
    specs = parse_steps(
        [
            {"type": "email", "subject": "Hello {{ contact.firstname }}", "body": NESTED},
            {"type": "email", "subject": NESTED_SUBJECT, "body": "<p>Fine</p>"},
        ]
    )
    first, second = preview_steps(ctx, specs, hostile.id, world.user.id)
    assert first.subject == "Hello Ann" and first.body_html is None
    assert len(first.problems) == 1 and "Template limit reached" in first.problems[0]
    assert "loops would run more than 10000 times" in first.problems[0]
    # The subject cannot be filled for this contact: a readable label, never raw code.
    assert second.subject == readable(NESTED_SUBJECT) == "Hi"
    assert second.body_html == "<p>Fine</p>"
    assert "Template limit reached" in second.problems[0]


def test_a_task_step_past_a_limit_fails_alone_with_template_limit(ctx, world, worker):
    sequence = create_sequence(
        ctx,
        world.user.id,
        "Calls",
        steps=[{"type": "task", "task_type": "call", "task_title": NESTED_SUBJECT}],
    )
    fine = world.contact("fine@corp.example", company="Acme")
    hostile = world.contact("long@corp.example", company=LONG_COMPANY)
    fine_id, hostile_id = enroll_ids(world, [fine, hostile], sequence)
    worker.tick()
    with ctx.db.read() as session:
        by_enrollment = {run.enrollment_id: run for run in session.scalars(select(StepRun))}
    assert by_enrollment[fine_id].status == "waiting_task"
    assert by_enrollment[hostile_id].status == "failed"
    assert by_enrollment[hostile_id].last_error.startswith("could not render (template_limit):")


def test_the_enrollment_view_shows_the_template_when_the_title_runs_past_a_limit(ctx, world):
    sequence = create_sequence(
        ctx,
        world.user.id,
        "Later",
        steps=[
            {"type": "email", "subject": "Hi", "body": "<p>One</p>"},
            {"type": "email", "delay_days": 3, "subject": NESTED_SUBJECT, "body": "<p>Two</p>"},
        ],
    )
    hostile = world.contact("long@corp.example", company=LONG_COMPANY)
    [eid] = enroll_ids(world, [hostile], sequence)
    view = get_enrollment(ctx, eid)
    assert [line.title for line in view.steps] == ["Hi", readable(NESTED_SUBJECT)]
