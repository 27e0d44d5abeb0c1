"""Everything Cadenza holds about one contact, as one JSON document (a subject access
request, or moving a person's history to another tool).

Who may read the contact may export it (contacts are the team's address book), but the
document holds only what the exporter may read under the one policy: an admin gets all
of it; a member or a viewer gets the enrollments, emails and tasks they would see in
the app, and the document says how many of each were left out (`complete`, `omitted`),
so a partial export is never mistaken for a whole one. Every export is audited
("contact.export"), since it copies personal data out of the installation.

The format is versioned (`format_version`) and described in docs/contact-data.md; a
change that removes or renames a field raises the version.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cadenza.domain import policy
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.store.models import (
    Association,
    AuditEntry,
    AutomationEvent,
    AutomationRun,
    Contact,
    ContactList,
    DeliveryAttempt,
    EmailEvent,
    Enrollment,
    ListMember,
    Mailbox,
    Message,
    ObjectType,
    Record,
    StepRun,
    Task,
    User,
)

FORMAT = "cadenza.contact-export"
FORMAT_VERSION = 1

CONTACT_FIELDS = (
    "id", "email", "firstname", "lastname", "company", "jobtitle", "phone", "timezone",
    "properties", "owner_id", "bounced_at", "unsubscribed_at", "blocked", "created_at",
    "updated_at",
)  # fmt: skip
ENROLLMENT_FIELDS = (
    "id", "sequence_id", "mailbox_id", "enrolled_by_id", "timezone", "state", "reason",
    "reason_detail", "start_step", "steps_snapshot", "settings_snapshot", "token_values",
    "bulk", "needs_attention", "send_at", "enrolled_at", "paused_at", "resume_at", "ended_at",
    "cause_event_id", "source_record_id",
)  # fmt: skip
STEP_RUN_FIELDS = (
    "id", "step_position", "step_type", "status", "due_at", "attempts", "wait_reason",
    "last_error", "completed_at", "created_at", "variant",
)  # fmt: skip
MESSAGE_FIELDS = (
    "id", "enrollment_id", "step_run_id", "mailbox_id", "message_id", "in_reply_to",
    "references", "from_email", "to_email", "subject", "body_html", "body_text", "raw",
    "status", "smtp_reply", "handed_at", "sent_at", "bounced_at", "created_at",
    "body_removed_at", "variant",
)  # fmt: skip
ATTEMPT_FIELDS = ("attempt", "outcome", "code", "reply", "at")
EVENT_FIELDS = (
    "id", "kind", "enrollment_id", "message_id", "data", "occurred_at", "revoked_at",
    "cause_event_id",
)  # fmt: skip
TASK_FIELDS = (
    "id", "owner_id", "enrollment_id", "type", "title", "notes", "priority", "status",
    "due_at", "draft_subject", "draft_body", "remind_at", "reminded_at", "completed_at",
    "created_at", "outcome", "duration_seconds", "outcome_notes", "logged_at",
)  # fmt: skip
AUDIT_FIELDS = ("id", "at", "actor_id", "action", "subject_type", "subject_id", "data")
AUTOMATION_FIELDS = ("id", "type", "data", "occurred_at")
RUN_FIELDS = ("id", "rule_id", "event_id", "outcome", "code", "message", "enrollment_id", "at")


def _plain(value: Any) -> Any:
    """A JSON value: times in ISO 8601 (UTC), states as their names, JSON columns as is."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _fields(row: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(row, name)) for name in names}


class _Reader:
    """What the exporter may read of this contact's rows, under the one policy."""

    def __init__(self, session: Session, actor: User | None) -> None:
        self.session, self.actor = session, actor
        self._mailbox_owner: dict[int, int | None] = {}

    def _owner_of(self, mailbox_id: int) -> int | None:
        if mailbox_id not in self._mailbox_owner:
            mailbox = self.session.get(Mailbox, mailbox_id)
            self._mailbox_owner[mailbox_id] = mailbox.owner_id if mailbox else None
        return self._mailbox_owner[mailbox_id]

    def may(self, resource: Resource, owners: list[int | None]) -> bool:
        return self.actor is None or policy.may(self.actor, resource, Action.READ, owners)

    def enrollment(self, row: Enrollment) -> bool:
        owners = [row.enrolled_by_id, self._owner_of(row.mailbox_id)]
        return self.may(Resource.ENROLLMENT, owners)

    def message(self, row: Message) -> bool:
        return self.may(Resource.MESSAGE, [self._owner_of(row.mailbox_id)])

    def task(self, row: Task) -> bool:
        return self.may(Resource.TASK, [row.owner_id])


def export_contact(ctx: Context, contact_id: int, *, actor_id: int | None = None) -> dict:
    """The document (JSON-able). Refused as reading the contact is; audited."""
    with ctx.db.transaction() as session:
        contact = fetch(session, Contact, contact_id)
        actor = authorize(session, actor_id, Resource.CONTACT, Action.READ)
        reader = _Reader(session, actor)
        omitted = {"enrollments": 0, "messages": 0, "events": 0, "tasks": 0}

        def kept(rows, visible, part: str) -> list:
            shown = [row for row in rows if visible(row)]
            omitted[part] += len(rows) - len(shown)
            return shown

        enrollments = kept(
            _all(session, Enrollment, Enrollment.contact_id == contact_id),
            reader.enrollment,
            "enrollments",
        )
        messages = kept(
            _all(session, Message, Message.contact_id == contact_id),
            reader.message,
            "messages",
        )
        tasks = kept(
            _all(session, Task, Task.contact_id == contact_id),
            reader.task,
            "tasks",
        )
        shown_enrollments = {e.id for e in enrollments}
        shown_messages = {m.id for m in messages}

        def event_visible(event: EmailEvent) -> bool:
            # An event about an email or an enrollment is read as that email or enrollment.
            if event.message_id is not None:
                return event.message_id in shown_messages
            if event.enrollment_id is not None:
                return event.enrollment_id in shown_enrollments
            return reader.may(Resource.EVENT, [])

        events = kept(
            _all(session, EmailEvent, EmailEvent.contact_id == contact_id),
            event_visible,
            "events",
        )
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_at": _plain(ctx.clock.now()),
            "exported_by": actor_id,
            "complete": not any(omitted.values()),
            "omitted": omitted,
            "contact": _fields(contact, CONTACT_FIELDS),
            "lists": _lists(session, contact_id),
            "associations": _associations(session, contact_id),
            "enrollments": [_enrollment(session, e) for e in enrollments],
            "messages": [_message(session, m) for m in messages],
            "events": [_fields(e, EVENT_FIELDS) for e in events],
            "tasks": [_fields(t, TASK_FIELDS) for t in tasks],
            "automation_events": [
                _fields(a, AUTOMATION_FIELDS)
                for a in _all(session, AutomationEvent, AutomationEvent.contact_id == contact_id)
            ],
            "automation_runs": [
                _fields(r, RUN_FIELDS)
                for r in _all(session, AutomationRun, AutomationRun.contact_id == contact_id)
            ],
            "audit": _audit(
                session,
                contact_id,
                enrollments=shown_enrollments,
                tasks={t.id for t in tasks},
                events={e.id for e in events},
                messages=shown_messages,
                born={
                    **{("enrollment", e.id): e.enrolled_at for e in enrollments},
                    **{("task", t.id): t.created_at for t in tasks},
                    **{("email_event", e.id): e.occurred_at for e in events},
                    **{("message", m.id): m.created_at for m in messages},
                },
            ),
        }
        data = {"complete": document["complete"], "omitted": omitted}
        record(session, ctx, actor_id, "contact.export", "contact", contact_id, data)
    return document


def _all(session: Session, model, *where) -> list:
    return list(session.scalars(select(model).where(*where).order_by(model.id)))


def _lists(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ContactList.id, ContactList.name, ContactList.kind, ListMember.added_at)
        .join(ListMember, ListMember.list_id == ContactList.id)
        .where(ListMember.contact_id == contact_id)
        .order_by(ContactList.id)
    )
    return [
        {"id": i, "name": name, "kind": _plain(kind), "added_at": _plain(added)}
        for i, name, kind, added in rows
    ]


def _associations(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Record.id, ObjectType.name, Record.name, Association.is_primary,
               Association.created_at)
        .join(Association, Association.record_id == Record.id)
        .join(ObjectType, ObjectType.id == Record.type_id)
        .where(Association.contact_id == contact_id)
        .order_by(Record.id)
    )  # fmt: skip
    return [
        {"record_id": i, "type": kind, "name": name, "is_primary": primary,
         "created_at": _plain(created)}
        for i, kind, name, primary, created in rows
    ]  # fmt: skip


def _enrollment(session: Session, enrollment: Enrollment) -> dict[str, Any]:
    runs = _all(session, StepRun, StepRun.enrollment_id == enrollment.id)
    return {
        **_fields(enrollment, ENROLLMENT_FIELDS),
        "step_runs": [_fields(run, STEP_RUN_FIELDS) for run in runs],
    }


def _message(session: Session, message: Message) -> dict[str, Any]:
    attempts = _all(session, DeliveryAttempt, DeliveryAttempt.message_id == message.id)
    return {
        **_fields(message, MESSAGE_FIELDS),
        "delivery_attempts": [_fields(a, ATTEMPT_FIELDS) for a in attempts],
    }


def _audit(
    session: Session,
    contact_id: int,
    *,
    enrollments: set[int],
    tasks: set[int],
    events: set[int],
    messages: set[int],
    born: dict[tuple[str, int | None], datetime],
) -> list[dict[str, Any]]:
    """Entries about the contact itself and about the rows of it the document holds.

    SQLite may give a new row the id of an erased one (the largest ids, deleted, are
    handed out again): entries older than an erasure of this id are another person's,
    and so are entries older than the row they name."""
    erased = session.scalar(
        select(func.max(AuditEntry.id)).where(
            AuditEntry.action == "contact.delete",
            AuditEntry.subject_type == "contact",
            AuditEntry.subject_id == contact_id,
        )
    )
    subjects = [("contact", {contact_id}), ("enrollment", enrollments), ("task", tasks),
                ("email_event", events), ("message", messages)]  # fmt: skip
    about = [
        (AuditEntry.subject_type == kind) & AuditEntry.subject_id.in_(sorted(ids))
        for kind, ids in subjects
        if ids
    ]
    rows = _all(session, AuditEntry, or_(*about), AuditEntry.id > (erased or 0))
    return [
        _fields(a, AUDIT_FIELDS)
        for a in rows
        if a.subject_type == "contact" or a.at >= born.get((a.subject_type, a.subject_id), a.at)
    ]
