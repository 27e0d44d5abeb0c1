"""Signals about a contact — reply, auto-reply, bounce, complaint, unsubscribe, meeting —
and what each one does to their enrollments, in one transaction with the event row.

Every signal is stored as an `email_events` row whose unique `dedupe_key` makes it
idempotent: the same event seen twice (an IMAP message read again after a cursor
reset, a webhook retried by its sender) finds its row and changes nothing.
Enrollments a signal ends or pauses point back at the event (`cause_event_id`).

One path per effect: unsubscribing — by the signed link (tracking.py), the events API
or a provider's complaint (events.py) — is always an `unsubscribe` signal applied
here (`_on_unsubscribe`); a complaint records its own event, then the unsubscribe it
causes, whose `cause_event_id` names the complaint. Ending an enrollment is
`enrollment.control.end_enrollment`, whatever the signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    EventKind,
    UnenrollOnReply,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import messages as counted_messages
from cadenza.services.enrollment.control import end_enrollment, pause_enrollment, resume
from cadenza.store.models import (
    Association,
    Contact,
    EmailEvent,
    Enrollment,
    Message,
    ObjectType,
    Record,
)

_LIVE = LIVE_ENROLLMENT_STATES


@dataclass(frozen=True)
class Signal:
    """What happened and to whom: our message when known, else the contact.

    `mailbox_id` narrows a contact-only signal to the enrollments sending from that
    mailbox (a reply seen in that mailbox's inbox); without it, all of the contact's.

    `acts` is False for a signal that could not be authenticated (a bounce or
    auto-reply naming no message this mailbox sent): it is recorded against the contact,
    and the enrollment it would concern (`enrollment_id`), so a person can see it, but it
    changes nothing — anyone can send a mailbox a message that looks like a bounce.
    """

    kind: EventKind
    dedupe_key: str
    message_pk: int | None = None
    contact_id: int | None = None
    mailbox_id: int | None = None
    hard: bool = True  # bounces: permanent (5.x.x) or temporary (4.x.x)
    return_date: date | None = None  # auto-replies: the day the sender is back
    occurred_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)
    acts: bool = True
    enrollment_id: int | None = None  # shown with this enrollment when no message is known
    cause_event_id: int | None = None  # the event that caused this one (a complaint)
    reason: UnenrollReason | None = None  # the unenroll reason, when not the kind's own


@dataclass
class Outcome:
    event_id: int | None
    duplicate: bool = False
    matched: bool = False  # a contact or message was found for it
    unenrolled: list[int] = field(default_factory=list)
    paused: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "duplicate": self.duplicate,
            "matched": self.matched,
            "unenrolled": self.unenrolled,
            "paused": self.paused,
        }


def record_signal(ctx: Context, signal: Signal) -> Outcome:
    """Applies a signal in its own transaction; a concurrent twin makes it a duplicate."""
    try:
        with ctx.db.transaction() as session:
            return apply(session, ctx, signal)
    except IntegrityError:
        with ctx.db.read() as session:
            existing = _existing(session, signal.dedupe_key)
        if existing is None:
            raise
        return Outcome(existing, duplicate=True)


def _existing(session: Session, dedupe_key: str) -> int | None:
    return session.scalar(select(EmailEvent.id).where(EmailEvent.dedupe_key == dedupe_key))


def apply(session: Session, ctx: Context, signal: Signal) -> Outcome:
    """In the caller's transaction: the event row first, then its effects."""
    existing = _existing(session, signal.dedupe_key)
    if existing is not None:
        return Outcome(existing, duplicate=True)
    message = session.get(Message, signal.message_pk) if signal.message_pk else None
    contact_id = message.contact_id if message is not None else signal.contact_id
    contact = session.get(Contact, contact_id, with_for_update=True) if contact_id else None
    event = EmailEvent(
        kind=signal.kind,
        contact_id=contact.id if contact else None,
        enrollment_id=message.enrollment_id if message is not None else signal.enrollment_id,
        message_id=message.id if message is not None else None,
        dedupe_key=signal.dedupe_key,
        data=dict(signal.data),
        occurred_at=signal.occurred_at or ctx.clock.now(),
        cause_event_id=signal.cause_event_id,
    )
    session.add(event)
    session.flush()
    counted_messages.event_recorded(session, event)
    outcome = Outcome(event.id, matched=contact is not None)
    if contact is not None and signal.acts:
        _EFFECTS[signal.kind](session, ctx, signal, event, contact, message, outcome)
    event.data = {**event.data, "unenrolled": outcome.unenrolled, "paused": outcome.paused}
    return outcome


# --- effects ------------------------------------------------------------------------


def _on_reply(session, ctx, signal, event, contact, message, outcome) -> None:
    """The enrollment replied to ends; with the company rule, so do its colleagues'."""
    for enrollment in _concerned(session, signal, contact, message):
        if enrollment.state in _LIVE:
            _end(session, ctx, enrollment, UnenrollReason.REPLIED, event, outcome)
        settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
        if settings.unenroll_on_reply is UnenrollOnReply.COMPANY:
            for colleague in _colleagues(session, enrollment, contact):
                _end(session, ctx, colleague, UnenrollReason.COMPANY_REPLIED, event, outcome)


def _on_auto_reply(session, ctx, signal, event, contact, message, outcome) -> None:
    """Not a reply: active enrollments pause until the sender is back."""
    for enrollment in _concerned(session, signal, contact, message):
        out_of_office = enrollment.state == EnrollmentState.PAUSED and enrollment.resume_at
        if enrollment.state != EnrollmentState.ACTIVE and not out_of_office:
            continue  # ended, or paused by a person: theirs to resume
        if enrollment.state == EnrollmentState.ACTIVE:
            pause_enrollment(session, ctx, enrollment)
        enrollment.resume_at = resume_time(enrollment, signal.return_date, ctx.clock.now())
        enrollment.cause_event_id = event.id
        outcome.paused.append(enrollment.id)
        data = {"event_id": event.id, "resume_at": enrollment.resume_at.isoformat()}
        record(session, ctx, None, "enrollment.auto_pause", "enrollment", enrollment.id, data)


def resume_time(enrollment: Enrollment, back: date | None, now: datetime) -> datetime:
    """The start of the return day in the contact's zone, else now plus the set days."""
    if back is None:
        days = SequenceSettings.from_dict(enrollment.settings_snapshot).auto_reply_pause_days
        return now + timedelta(days=days)
    tz = parse_timezone(enrollment.timezone)
    return datetime.combine(back, time(0), tzinfo=tz).astimezone(now.tzinfo)


def _on_bounce(session, ctx, signal, event, contact, message, outcome) -> None:
    """A hard bounce marks the contact (never enrolled again) and ends everything it is in."""
    if not signal.hard:
        return
    now = ctx.clock.now()
    if message is not None and message.bounced_at is None:
        message.bounced_at = now
        counted_messages.message_bounced(session, message, True)
    if contact.bounced_at is None:
        contact.bounced_at = now
    for enrollment in _live_of_contact(session, contact.id):
        _end(session, ctx, enrollment, UnenrollReason.BOUNCED, event, outcome)


def _on_unsubscribe(session, ctx, signal, event, contact, message, outcome) -> None:
    """The one unsubscribe, whoever asks (link, API, a complaint): marks the contact and
    ends all of their live enrollments, each pointing at this event."""
    now = ctx.clock.now()
    if contact.unsubscribed_at is None:
        contact.unsubscribed_at = contact.updated_at = now
        data = {"event_id": event.id, "message_id": message.id if message else None}
        record(session, ctx, None, "contact.unsubscribe", "contact", contact.id, data)
    reason = signal.reason or UnenrollReason.UNSUBSCRIBED
    for enrollment in _live_of_contact(session, contact.id):
        _end(session, ctx, enrollment, reason, event, outcome)


def _on_complaint(session, ctx, signal, event, contact, message, outcome) -> None:
    """A spam report is kept as itself, and causes the contact's unsubscribe: the same
    `unsubscribe` event any other source records, pointing back at the complaint."""
    caused = Signal(
        kind=EventKind.UNSUBSCRIBE,
        dedupe_key=f"{signal.dedupe_key}:unsubscribe",
        message_pk=message.id if message is not None else None,
        contact_id=contact.id,
        occurred_at=event.occurred_at,
        data={"source": signal.data.get("source"), "cause": str(EventKind.COMPLAINT)},
        cause_event_id=event.id,
        reason=UnenrollReason.COMPLAINED,
    )
    unsubscribed = apply(session, ctx, caused)
    outcome.unenrolled.extend(unsubscribed.unenrolled)


def _on_meeting(session, ctx, signal, event, contact, message, outcome) -> None:
    for enrollment in _live_of_contact(session, contact.id):
        if SequenceSettings.from_dict(enrollment.settings_snapshot).unenroll_on_meeting:
            _end(session, ctx, enrollment, UnenrollReason.MEETING_BOOKED, event, outcome)


_EFFECTS = {
    EventKind.REPLY: _on_reply,
    EventKind.AUTO_REPLY: _on_auto_reply,
    EventKind.BOUNCE: _on_bounce,
    EventKind.COMPLAINT: _on_complaint,
    EventKind.UNSUBSCRIBE: _on_unsubscribe,
    EventKind.MEETING_BOOKED: _on_meeting,
}


# --- whom it concerns ---------------------------------------------------------------


def _concerned(session, signal: Signal, contact: Contact, message: Message | None):
    """The enrollment of the message answered; else the contact's live ones (on the mailbox)."""
    if message is not None and message.enrollment_id is not None:
        return [session.get(Enrollment, message.enrollment_id, with_for_update=True)]
    query = _live_query(contact.id)
    if signal.mailbox_id is not None:
        query = query.where(Enrollment.mailbox_id == signal.mailbox_id)
    return list(session.scalars(query))


def _live_query(contact_id: int):
    return (
        select(Enrollment)
        .where(Enrollment.contact_id == contact_id, Enrollment.state.in_(_LIVE))
        .order_by(Enrollment.id)
        .with_for_update()
    )


def _live_of_contact(session: Session, contact_id: int) -> list[Enrollment]:
    return list(session.scalars(_live_query(contact_id)))


def same_company(session: Session, contact: Contact):
    """Which contacts count as at the replier's company (docs/signals.md): the company
    record(s) the replier is associated with define it when there is one, since a CRM
    record is deliberate while the free-text field drifts ("Globex", "Globex Inc.");
    a replier with no company record falls back to the free-text `company` field (case
    and surrounding spaces ignored). None: the replier has no company at all."""
    companies = list(
        session.scalars(
            select(Association.record_id)
            .join(Record, Record.id == Association.record_id)
            .join(ObjectType, ObjectType.id == Record.type_id)
            .where(Association.contact_id == contact.id, ObjectType.name == "company")
        )
    )
    if companies:
        return Contact.id.in_(
            select(Association.contact_id).where(Association.record_id.in_(companies))
        )
    company = (contact.company or "").strip().lower()
    if not company:
        return None
    return func.lower(func.trim(Contact.company)) == company


def _colleagues(session: Session, enrollment: Enrollment, contact: Contact) -> list[Enrollment]:
    """Live enrollments in the same sequence of contacts at the same company."""
    colleague = same_company(session, contact)
    if colleague is None:
        return []
    return list(
        session.scalars(
            select(Enrollment)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(
                Enrollment.sequence_id == enrollment.sequence_id,
                Enrollment.state.in_(_LIVE),
                Enrollment.contact_id != contact.id,
                colleague,
            )
            .order_by(Enrollment.id)
            .with_for_update(of=Enrollment)
        )
    )


def _end(
    session, ctx, enrollment: Enrollment, reason: UnenrollReason, event, outcome: Outcome
) -> None:
    if enrollment.state not in _LIVE:
        return
    detail = f"{event.kind} event {event.id}"
    end_enrollment(session, ctx, enrollment, reason, detail, cause_event_id=event.id)
    outcome.unenrolled.append(enrollment.id)


# --- out-of-office pauses that are over -----------------------------------------------


def resume_due(ctx: Context, limit: int = 500) -> list[int]:
    """Resumes enrollments whose out-of-office pause has ended.

    The worker's tick calls this, not the inbox poller: a pause must end on time
    whether or not any mailbox is read (an installation without IMAP still gets
    auto-replies through the events API)."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(Enrollment.id)
                .where(
                    Enrollment.resume_at.is_not(None),
                    Enrollment.resume_at <= now,
                    Enrollment.state == EnrollmentState.PAUSED,
                )
                .order_by(Enrollment.resume_at)
                .limit(limit)
            )
        )
    resumed = []
    for enrollment_id in due:
        try:
            resume(ctx, enrollment_id)
        except CadenzaError:  # resumed or ended meanwhile by someone else
            continue
        resumed.append(enrollment_id)
    return resumed


def next_resume_at(ctx: Context) -> datetime | None:
    """When the next out-of-office pause ends: a moment the worker must wake up for."""
    with ctx.db.read() as session:
        return session.scalar(
            select(func.min(Enrollment.resume_at)).where(
                Enrollment.resume_at.is_not(None),
                Enrollment.state == str(EnrollmentState.PAUSED),
            )
        )
