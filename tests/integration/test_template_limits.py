"""Template limits in the engine: a template that passes the save check with sample values
but blows a limit for one contact's values fails that one step, with template_limit, and
every other contact's email still goes out in the same tick (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.enrollment_views import get_enrollment
from cadenza.services.mailboxes import create_mailbox
from cadenza.services.sequences import create_sequence
from cadenza.services.users import create_user
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
