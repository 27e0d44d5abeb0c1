"""Team reports: what each sequence, rep or step achieved over a period, beside the
period before, with rates; and the replies and meetings per day for the charts.

Every figure counts what happened *in* the period (docs/reports.md has the table):
enrollments made in it, emails sent in it (and which of those bounced), human opens
and clicks, replies and meetings that occurred in it, enrollments that finished or
were unsubscribed in it, tasks completed in it (calls by their logged outcome) and
tasks that fell due in it and are still open past due. Each is one GROUP BY over the
period's rows, read through an index on the time column, so a report costs what its
period holds, not what the tables have accumulated (bench/reports.py).

Rates are the sequence analytics' (results.contact_rates): one definition for both.
A grouping is one key column (`_key`); templates add theirs there when they exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from cadenza.domain.enums import (
    EnrollmentState,
    EventKind,
    RepBasis,
    ReportBy,
    TaskStatus,
    TaskType,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.report_period import Period, change
from cadenza.services.access import authorize, owner_filter
from cadenza.services.analytics.engagement import human_event
from cadenza.services.analytics.results import Outcomes, contact_rates
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.sequences.catalog import load_sequence
from cadenza.store.models import (
    EmailEvent,
    Enrollment,
    Mailbox,
    Message,
    Sequence,
    StepRun,
    Task,
    User,
)

# A completed call with no outcome logged (before outcomes existed, or skipped).
NOT_LOGGED = "not_logged"
_SIGNALS = (EventKind.REPLY, EventKind.MEETING_BOOKED)
_ENGAGEMENT = (EventKind.OPEN, EventKind.CLICK)


@dataclass(frozen=True)
class ReportQuery:
    by: ReportBy
    period: Period
    basis: RepBasis = RepBasis.ENROLLED_BY
    rep_id: int | None = None
    sequence_id: int | None = None


@dataclass(frozen=True)
class Figures:
    """One row's counts; per step the enrollment figures (enrolled, active, finished,
    unsubscribed) are not a step's and stay 0."""

    enrolled: int = 0
    active: int = 0
    finished: int = 0
    sent: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    meetings_booked: int = 0
    unsubscribed: int = 0
    contacts_emailed: int = 0
    tasks_done: int = 0
    tasks_overdue: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # outcome key -> completed calls

    @property
    def delivered(self) -> int:
        return self.sent - self.bounced

    @property
    def rates(self) -> dict[str, float | None]:
        outcomes = Outcomes(
            sent=self.sent,
            delivered=self.delivered,
            bounced=self.bounced,
            opened=self.opened,
            clicked=self.clicked,
            replied=self.replied,
            meetings_booked=self.meetings_booked,
        )
        return contact_rates(outcomes, self.contacts_emailed, self.unsubscribed)

    def counts(self) -> dict[str, int]:
        """Every count by name, delivered included, calls excluded (they are keyed)."""
        found = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "calls"}
        return {**found, "delivered": self.delivered}

    @staticmethod
    def total(rows: Iterable[Figures]) -> Figures:
        rows = list(rows)
        calls: dict[str, int] = defaultdict(int)
        for row in rows:
            for outcome, n in row.calls.items():
                calls[outcome] += n
        summed = {
            f.name: sum(getattr(r, f.name) for r in rows)
            for f in fields(Figures)
            if f.name != "calls"
        }
        return Figures(**summed, calls=dict(calls))


@dataclass(frozen=True)
class ReportRow:
    key: int | None  # the sequence's id, the rep's user id, or the step's position
    label: str
    current: Figures
    previous: Figures

    @property
    def deltas(self) -> dict[str, int]:
        before = self.previous.counts()
        return {name: n - before[name] for name, n in self.current.counts().items()}

    @property
    def changes(self) -> dict[str, float | None]:
        before = self.previous.counts()
        return {name: change(n, before[name]) for name, n in self.current.counts().items()}


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    previous: Period
    rows: list[ReportRow]
    total: ReportRow
    # Only the acting member's own work (a member sees no one else's figures).
    own_work_only: bool = False


@dataclass(frozen=True)
class DailySignals:
    """Replies and meetings per UTC day for one row of a report (the charts)."""

    key: int | None
    label: str
    days: list[date]
    replied: list[int]
    meetings_booked: list[int]


def team_report(ctx: Context, query: ReportQuery, *, actor_id: int | None = None) -> Report:
    """The report asked for, checked against the policy: a member asking for another
    rep is refused, and without a rep sees their own work only."""
    with ctx.db.read() as session:
        scope = scope_of(session, query, actor_id)
        current = _figures(session, scope, query.period, ctx.clock.now())
        before = query.period.previous()
        previous = _figures(session, scope, before, ctx.clock.now())
        keys = sorted(set(current) | set(previous), key=lambda k: (k is None, k or 0))
        labels = _labels(session, query, keys)
    rows = [
        ReportRow(k, labels.get(k, str(k)), current.get(k, Figures()), previous.get(k, Figures()))
        for k in keys
    ]
    total = ReportRow(
        None,
        "All",
        Figures.total(r.current for r in rows),
        Figures.total(r.previous for r in rows),
    )
    return Report(query, before, rows, total, own_work_only=scope.own is not None)


def daily_signals(
    ctx: Context, query: ReportQuery, *, actor_id: int | None = None
) -> list[DailySignals]:
    """Replies and meetings per day and per row (sequence, rep or step) in the period."""
    days = query.period.day_list()
    index = {day: i for i, day in enumerate(days)}
    with ctx.db.read() as session:
        scope = scope_of(session, query, actor_id)
        stmt = scoped(
            select(scope.key, EmailEvent.kind, EmailEvent.occurred_at)
            .select_from(EmailEvent)
            .join(Enrollment, Enrollment.id == EmailEvent.enrollment_id),
            scope,
            steps_via_message=True,
        ).where(
            EmailEvent.kind.in_(_SIGNALS),
            EmailEvent.occurred_at >= query.period.since,
            EmailEvent.occurred_at < query.period.until,
            EmailEvent.revoked_at.is_(None),
        )
        tally: dict[int | None, dict[str, list[int]]] = {}
        for key, kind, at in session.execute(stmt):
            series = tally.setdefault(
                key, {"replied": [0] * len(days), "meetings_booked": [0] * len(days)}
            )
            name = "replied" if kind == EventKind.REPLY else "meetings_booked"
            series[name][index[at.date()]] += 1
        labels = _labels(session, query, list(tally))
    return [
        DailySignals(key, labels.get(key, str(key)), days, s["replied"], s["meetings_booked"])
        for key, s in sorted(tally.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    ]


# --- scope: the grouping key and the filters every figure's query shares ---------------


@dataclass(frozen=True)
class Scope:
    by: ReportBy
    key: Any  # a column of the enrollment, its mailbox or a step run
    rep_column: Any
    rep_id: int | None
    sequence_id: int | None
    own: int | None  # a member's id: only enrollments they made or that send from theirs


def scope_of(session: Session, query: ReportQuery, actor_id: int | None) -> Scope:
    if query.by == ReportBy.STEP and query.sequence_id is None:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "a report by step needs its sequence (sequence=ID)"
        )
    if query.sequence_id is not None:
        load_sequence(session, query.sequence_id)  # sequence_not_found when unknown
    if query.rep_id is not None:
        fetch(session, User, query.rep_id)  # user_not_found when unknown
        authorize(session, actor_id, Resource.REPORT, Action.READ, [query.rep_id])
        own = None
    else:
        # Everyone may read their own work; whether they see more is owner_filter's.
        authorize(session, actor_id, Resource.REPORT, Action.READ, [actor_id])
        own = owner_filter(session, actor_id, Resource.REPORT)
    rep_column = (
        Mailbox.owner_id if query.basis == RepBasis.MAILBOX_OWNER else Enrollment.enrolled_by_id
    )
    key = _key(query.by, rep_column)
    return Scope(query.by, key, rep_column, query.rep_id, query.sequence_id, own)


def _key(by: ReportBy, rep_column: Any) -> Any:
    """One column per grouping. Templates: their key column goes here."""
    if by == ReportBy.SEQUENCE:
        return Enrollment.sequence_id
    if by == ReportBy.REP:
        return rep_column
    return StepRun.step_position


def scoped(stmt: Select, scope: Scope, *, steps_via_message: bool = False) -> Select:
    """Joins the enrollment's mailbox (a small table) and applies the filters; per step,
    reaches the step run through the row's message (events) or its own link."""
    stmt = stmt.join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
    if scope.by == ReportBy.STEP and steps_via_message:
        stmt = stmt.join(Message, Message.id == EmailEvent.message_id).join(
            StepRun, StepRun.id == Message.step_run_id
        )
    # The filters are written `column + 0` so that no planner starts from the sequence's
    # or the rep's index (every enrollment they ever had) instead of the period's time
    # index: a filter narrows the period's rows, it never widens the read to the history.
    if scope.sequence_id is not None:
        stmt = stmt.where(Enrollment.sequence_id + 0 == scope.sequence_id)
    if scope.rep_id is not None:
        stmt = stmt.where(scope.rep_column + 0 == scope.rep_id)
    if scope.own is not None:
        stmt = stmt.where(
            (Enrollment.enrolled_by_id + 0 == scope.own) | (Mailbox.owner_id + 0 == scope.own)
        )
    return stmt


# --- the figures: one GROUP BY per family, over the period's rows ----------------------


def _figures(
    session: Session, scope: Scope, period: Period, now: datetime
) -> dict[int | None, Figures]:
    lo, hi = period.since, period.until
    tally: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    calls: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    key = scope.key

    if scope.by != ReportBy.STEP:
        made = scoped(
            select(key, Enrollment.state, func.count())
            .select_from(Enrollment)
            .where(Enrollment.enrolled_at >= lo, Enrollment.enrolled_at < hi),
            scope,
        ).group_by(key, Enrollment.state)
        for k, state, n in session.execute(made):
            tally[k]["enrolled"] += n
            if state == EnrollmentState.ACTIVE:
                tally[k]["active"] += n
        ended = scoped(
            select(key, Enrollment.state, Enrollment.reason, func.count())
            .select_from(Enrollment)
            .where(Enrollment.ended_at >= lo, Enrollment.ended_at < hi),
            scope,
        ).group_by(key, Enrollment.state, Enrollment.reason)
        for k, state, reason, n in session.execute(ended):
            if state == EnrollmentState.FINISHED:
                tally[k]["finished"] += n
            elif reason == UnenrollReason.UNSUBSCRIBED:
                tally[k]["unsubscribed"] += n

    sent = select(
        key,
        func.count(),
        func.count(Message.bounced_at),
        func.count(distinct(Enrollment.id)),
    ).select_from(Message)
    if scope.by == ReportBy.STEP:
        sent = sent.join(StepRun, StepRun.id == Message.step_run_id)
    sent = scoped(
        sent.join(Enrollment, Enrollment.id == Message.enrollment_id).where(
            Message.sent_at >= lo, Message.sent_at < hi
        ),
        scope,
    ).group_by(key)
    for k, n, bounced, emailed in session.execute(sent):
        tally[k].update(sent=n, bounced=bounced, contacts_emailed=emailed)

    seen = scoped(
        select(key, EmailEvent.kind, func.count(distinct(EmailEvent.message_id)))
        .select_from(EmailEvent)
        .join(Enrollment, Enrollment.id == EmailEvent.enrollment_id)
        .where(
            EmailEvent.kind.in_(_ENGAGEMENT),
            EmailEvent.occurred_at >= lo,
            EmailEvent.occurred_at < hi,
            human_event(),
        ),
        scope,
        steps_via_message=True,
    ).group_by(key, EmailEvent.kind)
    for k, kind, n in session.execute(seen):
        tally[k]["opened" if kind == EventKind.OPEN else "clicked"] = n

    signals = scoped(
        select(key, EmailEvent.kind, func.count(distinct(Enrollment.id)))
        .select_from(EmailEvent)
        .join(Enrollment, Enrollment.id == EmailEvent.enrollment_id)
        .where(
            EmailEvent.kind.in_(_SIGNALS),
            EmailEvent.occurred_at >= lo,
            EmailEvent.occurred_at < hi,
            EmailEvent.revoked_at.is_(None),
        ),
        scope,
        steps_via_message=True,
    ).group_by(key, EmailEvent.kind)
    for k, kind, n in session.execute(signals):
        tally[k]["replied" if kind == EventKind.REPLY else "meetings_booked"] = n

    done = (
        _task_query(select(key, Task.type, Task.outcome, func.count()), scope)
        .where(Task.status == TaskStatus.COMPLETED, Task.completed_at >= lo, Task.completed_at < hi)
        .group_by(key, Task.type, Task.outcome)
    )
    for k, task_type, outcome, n in session.execute(done):
        tally[k]["tasks_done"] += n
        if task_type == TaskType.CALL:
            calls[k][outcome or NOT_LOGGED] += n

    overdue = (
        _task_query(select(key, func.count()), scope)
        .where(Task.status == TaskStatus.OPEN, Task.due_at >= lo, Task.due_at < min(hi, now))
        .group_by(key)
    )
    for k, n in session.execute(overdue):
        tally[k]["tasks_overdue"] = n

    return {
        k: Figures(**counts, calls=dict(calls.get(k, {})))
        for k, counts in {**{k: {} for k in calls}, **tally}.items()
    }


def _task_query(stmt: Select, scope: Scope) -> Select:
    """Tasks count for the enrollment they belong to (its sequence, its rep)."""
    stmt = stmt.select_from(Task).join(Enrollment, Enrollment.id == Task.enrollment_id)
    if scope.by == ReportBy.STEP:
        stmt = stmt.join(StepRun, StepRun.id == Task.step_run_id)
    return scoped(stmt, scope)


def _labels(session: Session, query: ReportQuery, keys: list[int | None]) -> dict[int | None, str]:
    wanted = [k for k in keys if k is not None]
    if not wanted:
        return {}
    if query.by == ReportBy.SEQUENCE:
        return dict(
            session.execute(select(Sequence.id, Sequence.name).where(Sequence.id.in_(wanted))).all()
        )
    if query.by == ReportBy.REP:
        return {
            uid: (f"{first} {last}".strip() or email)
            for uid, first, last, email in session.execute(
                select(User.id, User.firstname, User.lastname, User.email).where(
                    User.id.in_(wanted)
                )
            )
        }
    types: dict[int, str] = {}
    if query.sequence_id is not None:
        sequence = load_sequence(session, query.sequence_id)
        types = {s.position: s.type for s in sequence.steps}
    return {k: f"Step {k}" + (f" ({types[k]})" if k in types else "") for k in wanted}
