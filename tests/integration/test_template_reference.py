"""A step using a library template by reference, run by the engine on an injected
clock through the capture transport (both databases): an enrollment started before the
template was edited keeps the old text, one started after gets the new one, and each
message counts for the template's figures (replies matched by message or by sender)."""

from datetime import timedelta

from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.services.analytics.template_figures import template_figures
from cadenza.services.sequences import templates_library as library
from cadenza.services.signals import events
from cadenza.store.models import Message
from tests.conftest import enroll_ids


def sent_by_contact(ctx, contact_id):
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Message).where(Message.contact_id == contact_id).order_by(Message.id)
        )
        return [(m.subject, m.body_html, m.template_id, m.message_id) for m in rows]


def test_running_enrollments_keep_the_text_they_started_with(ctx, world, worker):
    rep = world.user.id
    template = library.create_template(
        ctx, rep, name="Nudge", subject="Old news for {{ contact.firstname }}",
        body="<p>Old body</p>",
    )  # fmt: skip
    sequence = world.make_sequence(
        steps=[
            {"type": "email", "subject": "Intro", "body": "<p>Intro</p>"},
            {"type": "email", "delay_days": 3, "template_id": template.id},
        ],
        settings={"follow_up_days": "every_day"},
        name="Referenced",
    )
    ann = world.contact("ann@corp.example", firstname="Ann")
    bob = world.contact("bob@corp.example", firstname="Bob")
    start = ctx.clock.now()
    enroll_ids(world, [ann], sequence)
    worker.run_until(start + timedelta(hours=1))

    library.update_template(
        ctx, rep, template.id, {"subject": "New news for {{ contact.firstname }}",
                                "body": "<p>New body</p>"},
    )  # fmt: skip
    enroll_ids(world, [bob], sequence)
    worker.run_until(start + timedelta(days=4, hours=2))

    (intro, _, no_template, _), (subject, body, used, ann_message_id) = sent_by_contact(ctx, ann.id)
    assert (intro, no_template) == ("Intro", None)
    assert (subject, used) == ("Old news for Ann", template.id) and "Old body" in body
    [_, (subject, body, used, _)] = sent_by_contact(ctx, bob.id)
    assert (subject, used) == ("New news for Bob", template.id) and "New body" in body

    before = template_figures(ctx, [template.id])[template.id]
    assert (before.used_in_steps, before.sent, before.replied, before.reply_rate) == (1, 2, 0, 0)
    # Ann answers her message (matched by its Message-ID), Bob writes in (by his address):
    # each counts for the message of the template they last received.
    events.receive(ctx, events.ExternalEvent(EventKind.REPLY, "r-ann", message_id=ann_message_id))
    events.receive(ctx, events.ExternalEvent(EventKind.REPLY, "r-bob", contact_email=bob.email))
    after = template_figures(ctx, [template.id])[template.id]
    assert (after.sent, after.replied, after.reply_rate) == (2, 2, 1.0)
