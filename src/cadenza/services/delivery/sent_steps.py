"""Recording steps as sent: the message and the run marked sent, the `step_sent` event,
and then the next step scheduled or the enrollment finished.

The worker records every send this way, many in one hand-over commit (handover.py),
and so do the slow paths (a late or recovered send) and a person's review of an
unknown send (outbox.resolve_unknown), one at a time. The common end of a sequence,
its last step, is written with one statement per kind of row for all the steps of a
commit (store/bound_rows.py): with two workers on two cores, statements per email, not
sending, set PostgreSQL's pace (bench/engine.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from cadenza.domain.counters import NO_VARIANT
from cadenza.domain.enums import MessageStatus, StepRunStatus, WebhookEvent
from cadenza.services.counters import deltas as counters
from cadenza.services.counters import messages as counted_messages
from cadenza.services.counters.deltas import StepOf
from cadenza.services.delivery.claims import SENDING, ClaimedEmail
from cadenza.services.enrollment.progress import (
    after_steps_completed,
    finish_enrollments,
    locked_progress,
)
from cadenza.services.events_out import webhooks
from cadenza.store.bound_rows import BoundRows
from cadenza.store.models import Enrollment, Message, StepRun
from cadenza.store.prepared import Prepared

_SENT = BoundRows("sent", pk=Integer())


def _messages_sent(dialect: str) -> Executable:
    rows = _SENT.table(dialect)
    return (
        update(Message)
        .where(Message.id.in_(select(rows.c.pk)))
        .values(status=MessageStatus.SENT, sent_at=bindparam("now"))
        .execution_options(synchronize_session=False)
    )


def _runs_sent(dialect: str) -> Executable:
    rows = _SENT.table(dialect)
    return (
        update(StepRun)
        .where(StepRun.id.in_(select(rows.c.pk)))
        .values(
            status=StepRunStatus.SENT,
            completed_at=bindparam("now"),
            attempts=StepRun.attempts + bindparam("tries", type_=Integer),
            locked_by=None,
            locked_until=None,
            last_error=None,
        )
        .returning(
            StepRun.id,
            StepRun.attempts,
            StepRun.step_type,
            StepRun.variant,
            counted_messages.first_sent(),
        )
        .execution_options(synchronize_session=False)
    )


_MESSAGES_SENT = Prepared(build=_messages_sent)
_RUNS_SENT = Prepared(build=_runs_sent)


@dataclass(frozen=True)
class SentStep:
    """What recording a sent step needs, whoever knows it: a claim, or the stored rows."""

    run_id: int
    message_pk: int
    enrollment: dict[str, Any]  # as enrollment events carry it (webhooks.enrollment_event)
    step_position: int
    last_step: bool
    was: str = SENDING  # the run's status before: what its counters move from

    @classmethod
    def of(cls, claim: ClaimedEmail) -> SentStep:
        if claim.run_id is None:  # reminders are recorded by handover._record_reminder
            raise ValueError(f"message {claim.message_pk} is a task reminder, not a step")
        enrollment: dict[str, Any] = {
            "enrollment_id": claim.enrollment_id,
            "contact_id": claim.contact_id,
            "sequence_id": claim.sequence_id,
            "mailbox_id": claim.mailbox_id,
        }
        return cls(claim.run_id, claim.message_pk, enrollment, claim.step_position, claim.last_step)

    @classmethod
    def of_rows(cls, run: StepRun, enrollment: Enrollment, message: Message) -> SentStep:
        last = run.step_position >= len(enrollment.steps_snapshot)
        event = webhooks.enrollment_event(enrollment)
        return cls(run.id, message.id, event, run.step_position, last, run.status)


def record_step_sent(
    connection: Connection,
    sent: SentStep,
    sent_at: datetime,
    *,
    tried: bool,
    message_done: bool = False,
    session: Session | None = None,
) -> int:
    """`record_steps_sent` of one; returns the run's attempts."""
    attempts = record_steps_sent(
        connection, [sent], sent_at, tried=tried, message_done=message_done, session=session
    )
    return attempts[sent.run_id]


def record_steps_sent(
    connection: Connection,
    sent: list[SentStep],
    sent_at: datetime,
    *,
    tried: bool,
    message_done: bool = False,
    session: Session | None = None,
) -> dict[int, int]:
    """The one way steps are recorded as sent, in the caller's transaction.

    `tried`: this counts as a delivery attempt of each run's; `message_done`: the
    caller's own guarded statement already marked the messages. `session`: the
    caller's, when it holds an enrollment's row. Returns each run's attempts by run id.
    """
    if not sent:
        return {}
    dialect = connection.dialect
    if not message_done:
        _MESSAGES_SENT.run(connection, {**_SENT.bind([(s.message_pk,) for s in sent], dialect),
                                        "now": sent_at})  # fmt: skip
    params = {
        **_SENT.bind([(s.run_id,) for s in sent], dialect),
        "now": sent_at,
        "tries": 1 if tried else 0,
    }
    runs = {row[0]: row[1:] for row in _RUNS_SENT.run(connection, params).fetchall()}
    attempts: dict[int, int] = {}
    messages: list[counted_messages.SentMessage] = []
    for step in sent:
        tries, step_type, variant, first = runs[step.run_id]
        attempts[step.run_id] = int(tries)
        sequence_id = step.enrollment["sequence_id"]
        where = StepOf(sequence_id, step.step_position, variant or NO_VARIANT, step_type)
        counters.run_moved(connection, where, step.was, StepRunStatus.SENT)
        messages.append(
            counted_messages.SentMessage(
                sequence_id, step.enrollment["enrollment_id"], step.message_pk, bool(first)
            )
        )
    counted_messages.messages_sent(connection, messages, sent_at)
    for step in sent:
        event = {
            "enrollment_id": step.enrollment["enrollment_id"],
            "contact_id": step.enrollment["contact_id"],
            "sequence_id": step.enrollment["sequence_id"],
            "step_position": step.step_position,
            "message_id": step.message_pk,
        }
        webhooks.emit(connection, sent_at, WebhookEvent.STEP_SENT, event)
    # the common end of a sequence, without loading its snapshot
    finish_enrollments(connection, [s.enrollment for s in sent if s.last_step], sent_at)
    following = [s for s in sent if not s.last_step]
    if following:
        with Session(bind=connection) if session is None else _borrowed(session) as own:
            enrollments = locked_progress(own, [s.enrollment["enrollment_id"] for s in following])
            completed = [
                (enrollments[s.enrollment["enrollment_id"]], s.step_position) for s in following
            ]
            after_steps_completed(own, completed, sent_at)
            own.flush()
    return attempts


@contextmanager
def _borrowed(session: Session) -> Iterator[Session]:
    yield session
