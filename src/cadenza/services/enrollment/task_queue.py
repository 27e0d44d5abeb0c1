"""The queue's read model: one task with everything a rep needs to do it without
leaving the page (the contact, their clock, the sequence and step, the last emails
exchanged, the outcomes the task takes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.domain.policy import Action, Resource
from cadenza.domain.task_outcomes import OutcomeDef
from cadenza.services.access import authorize, owner_filter
from cadenza.services.context import Context
from cadenza.services.enrollment.task_outcomes import known_outcomes
from cadenza.services.enrollment.tasks import TaskFilter, TaskView, _not_found, list_tasks
from cadenza.services.lookup import fetch
from cadenza.store.models import Contact, EmailEvent, Enrollment, Mailbox, Message, Sequence, Task

RECENT_EMAILS = 5
# Where a contact's LinkedIn profile is kept: a contact property (docs/tasks.md).
LINKEDIN_PROPERTIES = ("linkedin_url", "linkedin")


@dataclass(frozen=True)
class ContactCard:
    id: int
    name: str
    email: str | None
    jobtitle: str | None
    company: str | None
    phone: str | None
    linkedin_url: str | None
    timezone: str | None
    local_now: datetime | None  # now on the contact's clock, when their zone is known


@dataclass(frozen=True)
class EmailLine:
    at: datetime
    direction: str  # "sent" or "received"
    subject: str
    message_id: int | None  # a sent one opens in the outbox


@dataclass(frozen=True)
class QueueItem:
    task: TaskView
    contact: ContactCard | None
    sequence_id: int | None
    sequence_name: str | None
    step_position: int | None
    step_count: int | None
    recent_emails: list[EmailLine]
    outcomes: list[OutcomeDef]


def _linkedin(properties: dict | None) -> str | None:
    for key in LINKEDIN_PROPERTIES:
        value = (properties or {}).get(key)
        # only a web address becomes a link: a property may hold anything
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return None


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ValueError, KeyError):
        return None


def queue_item(ctx: Context, task_id: int, *, actor_id: int | None = None) -> QueueItem:
    """Someone else's task answers as a missing one, like everywhere else."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        task = fetch(session, Task, task_id)
        authorize(
            session, actor_id, Resource.TASK, Action.READ, [task.owner_id],
            hidden_as=_not_found(task_id),
        )  # fmt: skip
        enrollment = session.get(Enrollment, task.enrollment_id) if task.enrollment_id else None
        sequence = session.get(Sequence, enrollment.sequence_id) if enrollment else None
        contact = session.get(Contact, task.contact_id) if task.contact_id else None
        card = None
        emails: list[EmailLine] = []
        if contact is not None:
            zone_name = contact.timezone or (enrollment.timezone if enrollment else None)
            zone = _zone(zone_name)
            name = " ".join(p for p in (contact.firstname, contact.lastname) if p)
            card = ContactCard(
                id=contact.id,
                name=name or contact.email or f"contact {contact.id}",
                email=contact.email,
                jobtitle=contact.jobtitle,
                company=contact.company,
                phone=contact.phone,
                linkedin_url=_linkedin(contact.properties),
                timezone=zone_name if zone else None,
                local_now=now.astimezone(zone) if zone else None,
            )
            emails = _recent_emails(session, actor_id, contact.id)
        outcomes = [o for o in known_outcomes(session) if o.task_type == task.type]
        run_position = None
        if task.step_run_id is not None and enrollment is not None:
            run_position = next(
                (r.step_position for r in enrollment.step_runs if r.id == task.step_run_id), None
            )
        return QueueItem(
            task=TaskView.of(task),
            contact=card,
            sequence_id=sequence.id if sequence else None,
            sequence_name=sequence.name if sequence else None,
            step_position=run_position,
            step_count=len(enrollment.steps_snapshot) if enrollment else None,
            recent_emails=emails,
            outcomes=outcomes,
        )


def _recent_emails(session, actor_id: int | None, contact_id: int) -> list[EmailLine]:
    """The last emails sent to the contact (from mailboxes the actor may read) and the
    replies they sent, newest first."""
    sent = (
        select(Message.id, Message.sent_at, Message.subject)
        .where(Message.contact_id == contact_id, Message.sent_at.is_not(None))
        .order_by(Message.sent_at.desc())
        .limit(RECENT_EMAILS)
    )
    owner = owner_filter(session, actor_id, Resource.MESSAGE)
    if owner is not None:
        sent = sent.where(
            Message.mailbox_id.in_(select(Mailbox.id).where(Mailbox.owner_id == owner))
        )
    lines = [EmailLine(at, "sent", subject, mid) for mid, at, subject in session.execute(sent)]
    replies = (
        select(EmailEvent.occurred_at, EmailEvent.data)
        .where(
            EmailEvent.contact_id == contact_id,
            EmailEvent.kind == EventKind.REPLY,
            EmailEvent.revoked_at.is_(None),
        )
        .order_by(EmailEvent.occurred_at.desc())
        .limit(RECENT_EMAILS)
    )
    for at, data in session.execute(replies):
        lines.append(EmailLine(at, "received", str((data or {}).get("subject") or "(reply)"), None))
    return sorted(lines, key=lambda line: line.at, reverse=True)[:RECENT_EMAILS]


def next_task_id(
    ctx: Context, *, actor_id: int, where: TaskFilter, skip: int | None = None
) -> int | None:
    """The first open task of the actor's own queue under the filters (not `skip`)."""
    for task in list_tasks(ctx, owner_id=actor_id, limit=2, actor_id=actor_id, where=where):
        if task.id != skip:
            return task.id
    return None
