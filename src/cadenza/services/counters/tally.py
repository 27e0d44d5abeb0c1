"""Counting a sequence's figures from the rows: the one recount.

What the counters must always equal. Used where the rows are the truth to start from
or to take away: rebuilding the counters (upkeep.rebuild, `cadenza db rebuild-counters`,
migration 0025's backfill), a contact's erasure (its rows' figures are subtracted
before the rows go) and the tests, which compare the counters with it. Its cost is the
rows it counts: never on a page's path.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import ColumnElement, Date, case, cast, distinct, func, select
from sqlalchemy.orm import Session

from cadenza.domain.counters import (
    BOUNCED,
    COUNTED_TASK_STATUSES,
    DAY_ENROLLED,
    DAY_OPENED,
    DAY_REPLIED,
    DAY_SENT,
    EMAILED,
    FIRSTS,
    NO_VARIANT,
    WHOLE_SEQUENCE,
    engagement_keys,
    enrollment_key,
    run_status_key,
    step_type_key,
    task_status_key,
)
from cadenza.domain.enums import ENGAGEMENT_KINDS, EventKind
from cadenza.services.counters.deltas import Delta
from cadenza.store.models import EmailEvent, Enrollment, Message, StepRun, Task

Key = tuple[int, int, str, str, date | None]  # (sequence, step position, variant, key, day)


def tally(session: Session, enrollments: ColumnElement[bool]) -> Counter[Key]:
    """The figures of the enrollments matching `enrollments` (a condition on the
    Enrollment table, e.g. one sequence's), from their rows."""
    counts: Counter[Key] = Counter()
    for sequence_id, state, reason, n in session.execute(
        select(Enrollment.sequence_id, Enrollment.state, Enrollment.reason, func.count())
        .where(enrollments)
        .group_by(Enrollment.sequence_id, Enrollment.state, Enrollment.reason)
    ):
        counts[sequence_id, WHOLE_SEQUENCE, NO_VARIANT, enrollment_key(state, reason), None] += n
    step = (Enrollment.sequence_id, StepRun.step_position, StepRun.variant)
    for sequence_id, position, variant, step_type, status, n in session.execute(
        select(*step, StepRun.step_type, StepRun.status, func.count())
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(enrollments)
        .group_by(*step, StepRun.step_type, StepRun.status)
    ):
        where = (sequence_id, position, variant or NO_VARIANT)
        counts[(*where, step_type_key(step_type), None)] += n
        key = run_status_key(status)
        if key is not None:
            counts[(*where, key, None)] += n
    for sequence_id, position, variant, task_status, n in session.execute(
        select(*step, Task.status, func.count())
        .join(StepRun, StepRun.id == Task.step_run_id)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(enrollments, Task.status.in_([str(s) for s in COUNTED_TASK_STATUSES]))
        .group_by(*step, Task.status)
    ):
        key = str(task_status_key(task_status))
        counts[sequence_id, position, variant or NO_VARIANT, key, None] += n
    _messages(session, enrollments, counts)
    _events(session, enrollments, counts)
    _days(session, enrollments, counts)
    return counts


def _messages(session: Session, enrollments: ColumnElement[bool], counts: Counter[Key]) -> None:
    step = (Enrollment.sequence_id, StepRun.step_position, StepRun.variant)
    for sequence_id, position, variant, n in session.execute(
        select(*step, func.count())
        .select_from(Message)
        .join(StepRun, StepRun.id == Message.step_run_id)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(enrollments, Message.bounced_at.is_not(None))
        .group_by(*step)
    ):
        counts[sequence_id, position, variant or NO_VARIANT, BOUNCED, None] += n
    for sequence_id, n in session.execute(
        select(Enrollment.sequence_id, func.count(distinct(Enrollment.id)))
        .join(Message, Message.enrollment_id == Enrollment.id)
        .where(enrollments, Message.sent_at.is_not(None))
        .group_by(Enrollment.sequence_id)
    ):
        counts[sequence_id, WHOLE_SEQUENCE, NO_VARIANT, EMAILED, None] += n


def _events(session: Session, enrollments: ColumnElement[bool], counts: Counter[Key]) -> None:
    human = EmailEvent.data["flagged"].as_string().is_(None)
    step = (Enrollment.sequence_id, StepRun.step_position, StepRun.variant, EmailEvent.kind)
    # Conditional aggregates rather than grouping by the flag: PostgreSQL would not
    # match a bound JSON path in GROUP BY with the same path in the select list.
    for sequence_id, position, variant, kind, events, messages, flagged in session.execute(
        select(
            *step,
            func.count(case((human, 1))),
            func.count(distinct(case((human, EmailEvent.message_id)))),
            func.count(case((~human, 1))),
        )
        .join(Message, Message.id == EmailEvent.message_id)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .outerjoin(StepRun, StepRun.id == Message.step_run_id)
        .where(enrollments, EmailEvent.kind.in_([str(k) for k in ENGAGEMENT_KINDS]))
        .group_by(*step)
    ):
        where = (sequence_id, position or WHOLE_SEQUENCE, variant or NO_VARIANT)
        for key, n in zip(engagement_keys(kind), (events, messages, flagged), strict=True):
            counts[(*where, key, None)] += n
    firsts = [str(k) for k in FIRSTS]
    for sequence_id, position, variant, kind, n in session.execute(
        select(*step, func.count(distinct(Message.id)))
        .join(Message, Message.id == EmailEvent.message_id)
        .join(StepRun, StepRun.id == Message.step_run_id)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(enrollments, EmailEvent.kind.in_(firsts))
        .group_by(*step)
    ):
        key = FIRSTS[EventKind(kind)][0]
        counts[sequence_id, position, variant or NO_VARIANT, key, None] += n
    for sequence_id, kind, n in session.execute(
        select(Enrollment.sequence_id, EmailEvent.kind, func.count(distinct(Enrollment.id)))
        .join(Enrollment, Enrollment.id == EmailEvent.enrollment_id)
        .where(enrollments, EmailEvent.kind.in_(firsts))
        .group_by(Enrollment.sequence_id, EmailEvent.kind)
    ):
        key = FIRSTS[EventKind(kind)][1]
        counts[sequence_id, WHOLE_SEQUENCE, NO_VARIANT, key, None] += n


def _days(session: Session, enrollments: ColumnElement[bool], counts: Counter[Key]) -> None:
    """The daily series: enrollments, emails sent, human opens and replies, by UTC day."""
    dialect = session.get_bind().dialect.name
    human = EmailEvent.data["flagged"].as_string().is_(None)
    sources = [
        (DAY_ENROLLED, Enrollment.enrolled_at, Enrollment, Enrollment.id, []),
        (DAY_SENT, Message.sent_at, Message, Message.enrollment_id, [Message.sent_at.is_not(None)]),
        (DAY_OPENED, EmailEvent.occurred_at, EmailEvent, EmailEvent.enrollment_id,
         [EmailEvent.kind == str(EventKind.OPEN), human]),
        (DAY_REPLIED, EmailEvent.occurred_at, EmailEvent, EmailEvent.enrollment_id,
         [EmailEvent.kind == str(EventKind.REPLY)]),
    ]  # fmt: skip
    for key, moment, rows_of, enrollment_id, conditions in sources:
        day = _utc_day(moment, dialect)
        query = select(Enrollment.sequence_id, day, func.count()).select_from(rows_of)
        if rows_of is not Enrollment:
            query = query.join(Enrollment, Enrollment.id == enrollment_id)
        found = session.execute(
            query.where(enrollments, *conditions).group_by(Enrollment.sequence_id, day)
        )
        for sequence_id, on, n in found:
            on = date.fromisoformat(on) if isinstance(on, str) else on
            counts[sequence_id, WHOLE_SEQUENCE, NO_VARIANT, key, on] += n


def _utc_day(moment, dialect: str):
    """The UTC date of a stored time: SQLite keeps naive UTC text, PostgreSQL a
    timestamptz read in the session's zone."""
    if dialect == "sqlite":
        return func.date(moment)
    return cast(func.timezone("UTC", moment), Date)


def as_deltas(counts: Counter[Key], sign: int = 1) -> list[Delta]:
    return [
        Delta(sequence_id, position, variant, key, sign * n, day)
        for (sequence_id, position, variant, key, day), n in counts.items()
        if n
    ]
