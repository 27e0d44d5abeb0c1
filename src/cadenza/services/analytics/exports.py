"""The rows behind a report, as CSV: enrollments with their outcomes, tasks with their
outcomes, messages with their events, over a period, in bounded memory.

A million rows must stream without a million rows in memory: rows are read in keyset
batches (`BATCH` at a time, ordered by the period's time column and the id, each batch
in a read transaction of its own), their outcomes are counted for that batch only, and
each batch is written out as CSV text before the next is read. Access is decided before
the first byte (a refusal is an error, not a truncated file), by the same policy and
scope as the reports (reports.scope_of).

Cells that a spreadsheet would run as a formula (=, +, -, @ first) get a leading
apostrophe: subjects and addresses come from outside.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from cadenza.domain.enums import EventKind, ExportRows, ReportBy
from cadenza.services.analytics.engagement import human_event
from cadenza.services.analytics.reports import (
    Figures,
    Report,
    ReportQuery,
    Scope,
    scope_of,
    scoped,
)
from cadenza.services.context import Context
from cadenza.store.models import (
    Contact,
    EmailEvent,
    Enrollment,
    Mailbox,
    Message,
    Sequence,
    StepRun,
    Task,
)

BATCH = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_EVENT_COLUMNS = (
    EventKind.OPEN,
    EventKind.CLICK,
    EventKind.REPLY,
    EventKind.MEETING_BOOKED,
    EventKind.BOUNCE,
    EventKind.UNSUBSCRIBE,
    EventKind.COMPLAINT,
)

HEADERS = {
    ExportRows.ENROLLMENTS: [
        "enrollment_id", "contact_id", "contact_email", "sequence_id", "sequence",
        "enrolled_by_id", "mailbox_owner_id", "state", "reason", "enrolled_at", "ended_at",
        "emails_sent", "emails_bounced", "opened", "clicked", "replied", "meeting_booked",
    ],
    ExportRows.TASKS: [
        "task_id", "owner_id", "contact_id", "contact_email", "enrollment_id", "sequence_id",
        "sequence", "step_position", "type", "title", "priority", "status", "due_at",
        "completed_at", "outcome", "duration_seconds", "outcome_notes", "logged_at",
    ],
    ExportRows.MESSAGES: [
        "message_id", "enrollment_id", "sequence_id", "sequence", "step_position",
        "mailbox_owner_id", "from_email", "to_email", "subject", "sent_at", "bounced_at",
        *(f"{kind}s" for kind in _EVENT_COLUMNS),
    ],
}  # fmt: skip


def export_rows(
    ctx: Context, rows: ExportRows, query: ReportQuery, *, actor_id: int | None = None
) -> Iterator[str]:
    """CSV text, a header and then one batch at a time. Checks the actor and the filters
    now (raising), and reads nothing more until the caller iterates."""
    with ctx.db.read() as session:
        scope = scope_of(session, _as_rows(query), actor_id)
    reader = _READERS[rows]
    return _stream(ctx, rows, scope, query, reader)


def _as_rows(query: ReportQuery) -> ReportQuery:
    """Rows are never grouped: a step report's rows are its sequence's rows."""
    return ReportQuery(
        ReportBy.SEQUENCE, query.period, query.basis, query.rep_id, query.sequence_id
    )


def _stream(ctx, rows, scope, query, reader) -> Iterator[str]:
    yield _csv([HEADERS[rows]])
    after: tuple[datetime, int] | None = None
    while True:
        with ctx.db.read() as session:
            batch, after = reader(session, scope, query, after)
        if batch:
            yield _csv(batch)
        if after is None:
            return


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _page(stmt: Select, at: Any, ident: Any, query: ReportQuery, after) -> Select:
    """The next batch in (time, id) order within the period: a keyset, not an offset."""
    stmt = stmt.where(at >= query.period.since, at < query.period.until)
    if after is not None:
        moment, last = after
        # `at >= moment` starts the index range where the last page ended; the OR only
        # settles ties, so each page reads its own rows, not the period from its start.
        stmt = stmt.where(at >= moment, or_(at > moment, ident > last))
    return stmt.order_by(at, ident).limit(BATCH)


def _next(batch: list, at: int, ident: int) -> tuple[datetime, int] | None:
    return (batch[-1][at], batch[-1][ident]) if len(batch) == BATCH else None


def _enrollments(session: Session, scope: Scope, query: ReportQuery, after):
    stmt = scoped(
        select(
            Enrollment.id, Enrollment.contact_id, Contact.email, Enrollment.sequence_id,
            Sequence.name, Enrollment.enrolled_by_id, Mailbox.owner_id, Enrollment.state,
            Enrollment.reason, Enrollment.enrolled_at, Enrollment.ended_at,
        )
        .select_from(Enrollment)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id),
        scope,
    )  # fmt: skip
    found = [
        list(r)
        for r in session.execute(_page(stmt, Enrollment.enrolled_at, Enrollment.id, query, after))
    ]
    ids = [r[0] for r in found]
    sent: dict[int | None, tuple[int, int]] = {}
    events: dict[int | None, dict[str, int]] = defaultdict(dict)
    if ids:
        for eid, n, bounced in session.execute(
            select(
                Message.enrollment_id, func.count(Message.sent_at), func.count(Message.bounced_at)
            )
            .where(Message.enrollment_id.in_(ids))
            .group_by(Message.enrollment_id)
        ):
            sent[eid] = (n, bounced)
        for eid, kind, n in session.execute(
            select(EmailEvent.enrollment_id, EmailEvent.kind, func.count())
            .where(
                EmailEvent.enrollment_id.in_(ids),
                EmailEvent.kind.in_(
                    (EventKind.OPEN, EventKind.CLICK, EventKind.REPLY, EventKind.MEETING_BOOKED)
                ),
                human_event() | EmailEvent.kind.in_((EventKind.REPLY, EventKind.MEETING_BOOKED)),
                EmailEvent.revoked_at.is_(None),
            )
            .group_by(EmailEvent.enrollment_id, EmailEvent.kind)
        ):
            events[eid][kind] = n
    out = []
    for row in found:
        n, bounced = sent.get(row[0], (0, 0))
        seen = events.get(row[0], {})
        out.append([
            *row, n, bounced,
            seen.get(EventKind.OPEN, 0) > 0, seen.get(EventKind.CLICK, 0) > 0,
            seen.get(EventKind.REPLY, 0) > 0, seen.get(EventKind.MEETING_BOOKED, 0) > 0,
        ])  # fmt: skip
    return out, _next(found, 9, 0)


def _tasks(session: Session, scope: Scope, query: ReportQuery, after):
    stmt = scoped(
        select(
            Task.id, Task.owner_id, Task.contact_id, Contact.email, Task.enrollment_id,
            Enrollment.sequence_id, Sequence.name, StepRun.step_position, Task.type,
            Task.title, Task.priority, Task.status, Task.due_at, Task.completed_at,
            Task.outcome, Task.duration_seconds, Task.outcome_notes, Task.logged_at,
        )
        .select_from(Task)
        .join(Enrollment, Enrollment.id == Task.enrollment_id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(StepRun, StepRun.id == Task.step_run_id),
        scope,
    )  # fmt: skip
    found = [list(r) for r in session.execute(_page(stmt, Task.due_at, Task.id, query, after))]
    return found, _next(found, 12, 0)


def _messages(session: Session, scope: Scope, query: ReportQuery, after):
    stmt = scoped(
        select(
            Message.id, Message.enrollment_id, Enrollment.sequence_id, Sequence.name,
            StepRun.step_position, Mailbox.owner_id, Message.from_email, Message.to_email,
            Message.subject, Message.sent_at, Message.bounced_at,
        )
        .select_from(Message)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .outerjoin(StepRun, StepRun.id == Message.step_run_id),
        scope,
    )  # fmt: skip
    found = [
        list(r) for r in session.execute(_page(stmt, Message.sent_at, Message.id, query, after))
    ]
    ids = [r[0] for r in found]
    counts: dict[int | None, dict[str, int]] = defaultdict(dict)
    if ids:
        human = human_event() | EmailEvent.kind.not_in((EventKind.OPEN, EventKind.CLICK))
        for mid, kind, n in session.execute(
            select(EmailEvent.message_id, EmailEvent.kind, func.count(case((human, 1))))
            .where(EmailEvent.message_id.in_(ids), EmailEvent.revoked_at.is_(None))
            .group_by(EmailEvent.message_id, EmailEvent.kind)
        ):
            counts[mid][kind] = n
    out = [[*row, *(counts[row[0]].get(k, 0) for k in _EVENT_COLUMNS)] for row in found]
    return out, _next(found, 9, 0)


_READERS: dict[ExportRows, Callable] = {
    ExportRows.ENROLLMENTS: _enrollments,
    ExportRows.TASKS: _tasks,
    ExportRows.MESSAGES: _messages,
}


def report_csv(report: Report) -> Iterator[str]:
    """A report as CSV: one line per row and one for the total, each count for the
    period, the period before and the difference, then the rates and calls by outcome."""
    names = list(Figures().counts())
    outcomes = sorted({o for r in [*report.rows, report.total] for o in r.current.calls})
    rates = list(Figures().rates)
    header = [str(report.query.by), "label"]
    for name in names:
        header += [name, f"{name}_previous", f"{name}_delta"]
    header += rates + [f"calls_{o}" for o in outcomes]
    yield _csv([header])
    for row in [*report.rows, report.total]:
        line: list[Any] = [row.key, row.label]
        now, before, deltas = row.current.counts(), row.previous.counts(), row.deltas
        for name in names:
            line += [now[name], before[name], deltas[name]]
        line += [row.current.rates[r] for r in rates]
        line += [row.current.calls.get(o, 0) for o in outcomes]
        yield _csv([line])
