"""Bulk history for the reports' memory test and bench/reports.py: enrollments, sent
messages, opens, replies, meetings and completed calls, spread evenly over a time span.

Going through the services would take hours for a million emails; this writes the rows
the engine would have written, in chunks, with ids taken after the table's current
maximum (so it can add history to a database that already holds some).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.context import Context
from cadenza.services.sequences.catalog import create_sequence
from cadenza.store.models import Contact, EmailEvent, Enrollment, Message, Task

ONE_EMAIL = [{"type": "email", "subject": "Hi", "body": "<p>Hello</p>"}]
OUTCOMES = ("connected", "left_voicemail", "no_answer", "busy", "meeting_booked")


@dataclass(frozen=True)
class History:
    rep_ids: list[int]
    sequence_ids: list[int]


def team(ctx: Context, *, reps: int = 4, sequences: int = 5) -> History:
    tag = uuid.uuid4().hex[:6]
    rep_ids, boxes = [], []
    for i in range(reps):
        user = create_user(ctx, f"rep{i}-{tag}@example.com", firstname=f"Rep{i}")
        rep_ids.append(user.id)
        boxes.append(create_mailbox(ctx, user.id, f"rep{i}-{tag}@example.com").id)
    sequence_ids = [
        create_sequence(ctx, rep_ids[i % reps], f"Sequence {i}", steps=ONE_EMAIL).id
        for i in range(sequences)
    ]
    return History(rep_ids, sequence_ids)


def seed_history(
    ctx: Context,
    history: History,
    *,
    enrollments: int,
    messages: int,
    start: datetime,
    end: datetime,
    chunk: int = 20_000,
) -> None:
    """`enrollments` enrollments and `messages` sent emails between start and end: every
    10th email opened, every 50th replied to, every 200th a meeting; one completed call
    per enrollment with a rotating outcome."""
    tag = uuid.uuid4().hex[:6]
    span = (end - start) / max(messages, 1)
    espan = (end - start) / max(enrollments, 1)
    reps, sequences = history.rep_ids, history.sequence_ids
    boxes = _mailboxes(ctx, reps)
    first_contact = _next_id(ctx, Contact)
    first_enrollment = _next_id(ctx, Enrollment)
    for lo in range(0, enrollments, chunk):
        size = min(chunk, enrollments - lo)
        with ctx.db.transaction() as session:
            session.execute(insert(Contact), [
                {"id": first_contact + lo + i, "email": f"h{lo + i}-{tag}@corp.example",
                 "email_key": f"h{lo + i}-{tag}@corp.example", "firstname": "Ann",
                 "properties": {}, "blocked": False, "created_at": start, "updated_at": start}
                for i in range(size)
            ])  # fmt: skip
            session.execute(insert(Enrollment), [
                {"id": first_enrollment + lo + i, "contact_id": first_contact + lo + i,
                 "sequence_id": sequences[(lo + i) % len(sequences)],
                 "mailbox_id": boxes[reps[(lo + i) % len(reps)]],
                 "enrolled_by_id": reps[(lo + i) % len(reps)], "timezone": "UTC",
                 "state": "finished", "start_step": 1, "steps_snapshot": [],
                 "settings_snapshot": {}, "token_values": {}, "bulk": False,
                 "needs_attention": False, "enrolled_at": start + espan * (lo + i),
                 "ended_at": start + espan * (lo + i)}
                for i in range(size)
            ])  # fmt: skip
            session.execute(insert(Task), [
                {"owner_id": reps[(lo + i) % len(reps)], "contact_id": first_contact + lo + i,
                 "enrollment_id": first_enrollment + lo + i, "type": "call", "title": "Call",
                 "priority": "none", "status": "completed", "due_at": start + espan * (lo + i),
                 "completed_at": start + espan * (lo + i), "created_at": start + espan * (lo + i),
                 "outcome": OUTCOMES[(lo + i) % len(OUTCOMES)], "duration_seconds": 60}
                for i in range(size)
            ])  # fmt: skip
    first_message = _next_id(ctx, Message)
    for lo in range(0, messages, chunk):
        size = min(chunk, messages - lo)
        rows, events = [], []
        for i in range(lo, lo + size):
            enrollment = first_enrollment + i * enrollments // messages
            at = start + span * i
            rows.append({
                "id": first_message + i, "enrollment_id": enrollment,
                "mailbox_id": boxes[reps[(enrollment - first_enrollment) % len(reps)]],
                "contact_id": first_contact + enrollment - first_enrollment,
                "message_id": f"<h{i}-{tag}@bench>", "from_email": "rep@example.com",
                "to_email": "ann@corp.example", "subject": "Hi", "body_html": "<p>Hello</p>",
                "body_text": "Hello", "status": "sent", "created_at": at, "handed_at": at,
                "sent_at": at,
            })  # fmt: skip
            for every, kind in ((10, "open"), (50, "reply"), (200, "meeting_booked")):
                if i % every == 0:
                    events.append({
                        "kind": kind, "enrollment_id": enrollment, "message_id": first_message + i,
                        "contact_id": first_contact + enrollment - first_enrollment,
                        "data": {}, "occurred_at": at,
                    })  # fmt: skip
        with ctx.db.transaction() as session:
            session.execute(insert(Message), rows)
            if events:
                session.execute(insert(EmailEvent), events)


def _mailboxes(ctx: Context, reps: list[int]) -> dict[int, int]:
    from cadenza.store.models import Mailbox

    with ctx.db.read() as session:
        return dict(
            session.execute(
                select(Mailbox.owner_id, Mailbox.id).where(Mailbox.owner_id.in_(reps))
            ).all()
        )


def _next_id(ctx: Context, model) -> int:
    with ctx.db.read() as session:
        return (session.scalar(select(func.max(model.id))) or 0) + 1
