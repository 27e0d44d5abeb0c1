"""A sequence's figures of its emails and their events: sent (by day), contacts
emailed, bounced, human opens and clicks, replies and meetings.

Distinct figures ("messages with at least one human open", "enrollments with a reply")
move when a message's or an enrollment's first such event comes and when its last one
goes. Whether there is another is asked of the rows, by a transaction that holds a
lock serialising it with every other that could add or remove one:

- opens and clicks: the message's row lock (`FOR NO KEY UPDATE`, which the event's own
  foreign key check does not conflict with), taken before asking. Two opens of one
  message at once are counted one after the other, so only the first is a first; an
  open arriving while the retention job deletes the message's old ones is seen by one
  of the two, whichever asks last;
- replies and meetings: signals, applied under their contact's row lock
  (signals/effects.apply), so no two of one message or enrollment are counted at once;
  the retention job never deletes them.

SQLite runs one writer at a time. No column on the messages table: the retention job
deletes old opens and clicks, so a flag could not say whether any remain.

An email is sent once per step of an enrollment and the next step is only scheduled
in the transaction that records it, so an enrollment's emails are recorded one after
the other: "its first email sent" needs no lock (the worker's hand-over takes none more).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, literal_column, or_, select
from sqlalchemy.orm import Session

from cadenza.domain.counters import (
    BOUNCED,
    DAY_OPENED,
    DAY_REPLIED,
    DAY_SENT,
    EMAILED,
    FIRSTS,
    NO_VARIANT,
    WHOLE_SEQUENCE,
    engagement_keys,
    is_human,
    utc_day,
)
from cadenza.domain.enums import ENGAGEMENT_KINDS, EventKind
from cadenza.services.counters.deltas import Delta, add
from cadenza.store.models import EmailEvent, Enrollment, Message, StepRun


def first_sent() -> ColumnElement[bool]:
    """Whether a step run's email is its enrollment's first sent: no other message of
    the enrollment has been sent. Read by the statement that records the run as sent
    (delivery/sent_steps.py), in its RETURNING, after its own message was marked: the
    question costs the hand-over commit no statement of its own (bench/engine.py)."""
    # SQLAlchemy writes SQLite's RETURNING columns unqualified, which inside this
    # subquery would name the message's own: the run's are named in full
    run_id: ColumnElement[int] = literal_column(f"{StepRun.__tablename__}.id", Integer())
    run_enrollment: ColumnElement[int] = literal_column(
        f"{StepRun.__tablename__}.enrollment_id", Integer()
    )
    other_sent = (
        select(Message.id)
        .where(
            Message.enrollment_id == run_enrollment,
            Message.sent_at.is_not(None),
            or_(Message.step_run_id.is_(None), Message.step_run_id != run_id),
        )
        .exists()
    )
    return ~other_sent


@dataclass(frozen=True)
class SentMessage:
    sequence_id: int
    enrollment_id: int
    pk: int
    first: bool  # its enrollment's first email sent (`first_sent`)


def messages_sent(connection: Connection, sent: list[SentMessage], sent_at: datetime) -> None:
    """Steps' emails were recorded as sent: on their day's chart, and each contact
    emailed where one is its enrollment's first (an enrollment's emails are sent one
    after the other, so one of them at most)."""
    if not sent:
        return
    day = utc_day(sent_at)
    deltas = [Delta(m.sequence_id, WHOLE_SEQUENCE, NO_VARIANT, DAY_SENT, 1, day) for m in sent]
    firsts = {m.enrollment_id: m.sequence_id for m in sent if m.first}
    deltas += [Delta(firsts[e], WHOLE_SEQUENCE, NO_VARIANT, EMAILED, 1) for e in sorted(firsts)]
    add(connection, deltas)


@dataclass(frozen=True)
class _Where:
    """A message's place in its sequence's figures; position None: on no step."""

    sequence_id: int
    position: int | None
    variant: str


def _message_place(session: Session, message_id: int, *, lock: bool) -> _Where | None:
    """None for an email of no sequence (a task reminder)."""
    query = (
        select(Enrollment.sequence_id, StepRun.step_position, StepRun.variant)
        .select_from(Message)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .outerjoin(StepRun, StepRun.id == Message.step_run_id)
        .where(Message.id == message_id)
    )
    if lock:
        query = query.with_for_update(of=Message, key_share=True)
    row = session.execute(query).one_or_none()
    return None if row is None else _Where(row[0], row[1], row[2] or NO_VARIANT)


def message_bounced(session: Session, message: Message, bounced: bool) -> None:
    """Its hard bounce was recorded (True) or undone (False): a step's bounced emails."""
    where = _message_place(session, message.id, lock=False)
    if where is not None and where.position is not None:
        n = 1 if bounced else -1
        add(session, [Delta(where.sequence_id, where.position, where.variant, BOUNCED, n)])


class _Firsts:
    """Which messages' and enrollments' distinct figures one call has moved already: a
    batch that deletes two opens of one message takes its "opened" away once."""

    def __init__(self) -> None:
        self.moved: set[tuple[str, int, str]] = set()

    def alone(
        self, session: Session, column, value: int, kind: str, event_id: int, human: bool = False
    ) -> bool:
        """Whether no other event of this kind (human, when asked) is on this message or
        enrollment (asked under the lock the module's docstring names), the first time
        it is asked."""
        mark = (column.key, value, kind)
        if mark in self.moved:
            return False
        condition = [column == value, EmailEvent.kind == kind, EmailEvent.id != event_id]
        if human:
            condition.append(EmailEvent.data["flagged"].as_string().is_(None))
        if session.scalar(select(EmailEvent.id).where(*condition).limit(1)) is not None:
            return False
        self.moved.add(mark)
        return True


def _sequence_of(session: Session, enrollment_id: int | None) -> int | None:
    if enrollment_id is None:
        return None
    return session.scalar(select(Enrollment.sequence_id).where(Enrollment.id == enrollment_id))


@dataclass(frozen=True)
class EventFacts:
    """What an event's figures depend on: the columns of an email_events row."""

    id: int
    kind: str
    message_id: int | None
    enrollment_id: int | None
    data: dict[str, Any] | None
    occurred_at: datetime


def event_recorded(session: Session, event: EmailEvent) -> None:
    """A new event row (flushed: it has its id), in the transaction that inserts it."""
    _events(session, [_facts(event)], sign=1)


def events_deleted(session: Session, events: Iterable[EventFacts]) -> None:
    """Event rows deleted by this transaction (the statement's RETURNING): their
    figures go, and a message's distinct figure goes with its last such event."""
    _events(session, list(events), sign=-1)


def _facts(event: EmailEvent) -> EventFacts:
    return EventFacts(
        event.id, event.kind, event.message_id, event.enrollment_id, event.data, event.occurred_at
    )


def _events(session: Session, events: list[EventFacts], sign: int) -> None:
    deltas: list[Delta] = []
    firsts = _Firsts()
    for event in events:
        counted = event.kind in ENGAGEMENT_KINDS or event.kind in FIRSTS
        where = (
            _message_place(session, event.message_id, lock=event.kind in ENGAGEMENT_KINDS)
            if counted and event.message_id is not None
            else None
        )
        human = is_human(event.data)
        if event.kind in ENGAGEMENT_KINDS:
            if where is not None:
                deltas += _engagement(session, firsts, event, where, human, sign)
            if event.kind == EventKind.OPEN and human:
                deltas += _day(session, event, DAY_OPENED, sign)
        if event.kind in FIRSTS:
            deltas += _firsts(session, firsts, event, where, sign)
            if event.kind == EventKind.REPLY:
                deltas += _day(session, event, DAY_REPLIED, sign)
    add(session, deltas)


def _engagement(
    session: Session, firsts: _Firsts, event: EventFacts, where: _Where, human: bool, sign: int
) -> list[Delta]:
    events, messages, flagged = engagement_keys(event.kind)
    position = WHOLE_SEQUENCE if where.position is None else where.position
    place = (where.sequence_id, position, where.variant)
    if not human:
        return [Delta(*place, flagged, sign)]
    found = [Delta(*place, events, sign)]
    assert event.message_id is not None
    if firsts.alone(
        session, EmailEvent.message_id, event.message_id, event.kind, event.id, human=True
    ):
        found.append(Delta(*place, messages, sign))
    return found


def _firsts(
    session: Session, firsts: _Firsts, event: EventFacts, where: _Where | None, sign: int
) -> list[Delta]:
    per_message, per_enrollment = FIRSTS[EventKind(event.kind)]
    found = []
    on_step = where is not None and where.position is not None
    if (
        on_step
        and event.message_id is not None
        and firsts.alone(session, EmailEvent.message_id, event.message_id, event.kind, event.id)
    ):
        assert where is not None and where.position is not None
        found.append(Delta(where.sequence_id, where.position, where.variant, per_message, sign))
    sequence_id = _sequence_of(session, event.enrollment_id)
    if (
        sequence_id is not None
        and event.enrollment_id is not None
        and firsts.alone(
            session, EmailEvent.enrollment_id, event.enrollment_id, event.kind, event.id
        )
    ):
        found.append(Delta(sequence_id, WHOLE_SEQUENCE, NO_VARIANT, per_enrollment, sign))
    return found


def _day(session: Session, event: EventFacts, key: str, sign: int) -> list[Delta]:
    sequence_id = _sequence_of(session, event.enrollment_id)
    if sequence_id is None:
        return []
    day = utc_day(event.occurred_at)
    return [Delta(sequence_id, WHOLE_SEQUENCE, NO_VARIANT, key, sign, day)]
