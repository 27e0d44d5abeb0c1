"""Shared by the signal tests: contacts who got our first email, and reading back events."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cadenza.store.models import EmailEvent, Enrollment, Message
from tests.conftest import enroll_ids


def send_first_emails(ctx, world, worker, names, sequence=None, **contact_fields):
    """Enrolls one contact per name (name@corp.example) and sends them step 1.

    Returns {name: (contact, enrollment_id, message)}.
    """
    contacts = {
        name: world.contact(f"{name}@corp.example", firstname=name.title(), **contact_fields)
        for name in names
    }
    ids = enroll_ids(world, list(contacts.values()), sequence=sequence)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    sent = {}
    with ctx.db.read() as session:
        for (name, contact), enrollment_id in zip(contacts.items(), ids, strict=True):
            message = session.scalar(select(Message).where(Message.enrollment_id == enrollment_id))
            assert message is not None and message.status == "sent", name
            sent[name] = (contact, enrollment_id, message)
    return sent


def enrollment(ctx, enrollment_id) -> Enrollment:
    with ctx.db.read() as session:
        return session.get(Enrollment, enrollment_id)


def events(ctx, kind=None) -> list[EmailEvent]:
    with ctx.db.read() as session:
        query = select(EmailEvent).order_by(EmailEvent.id)
        if kind is not None:
            query = query.where(EmailEvent.kind == kind)
        return list(session.scalars(query))
