"""What a sequence achieved: deliveries, human opens and clicks, replies, meetings,
bounces and unsubscribes, per sequence and per step, their rates, a daily series for
the chart, and one enrollment's timeline of events.

Built on stats.py (enrollments by state, step runs by status) and engagement.py (human
opens and clicks); bounces, replies, meetings, contacts emailed and the daily series
are the sequence's counters too (services/counters), so the cost follows the number of
figures, not of the sequence's rows. One enrollment's timeline reads its own rows.

Definitions (docs/analytics.md): delivered = sent and not hard-bounced; opened and
clicked count messages with at least one human (unflagged) event; replied and
meetings booked count enrollments with at least one such event; open, click and reply
rates are over delivered emails (reply rate per contact emailed); bounce rate is over
sent emails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from cadenza.domain.counters import (
    BOUNCED,
    DAY_ENROLLED,
    DAY_OPENED,
    DAY_REPLIED,
    DAY_SENT,
    EMAILED,
    ENROLLMENTS_MET,
    ENROLLMENTS_REPLIED,
    MEETINGS,
    REPLIED,
)
from cadenza.domain.enums import EnrollmentState, UnenrollReason
from cadenza.domain.policy import Action
from cadenza.domain.rates import email_rates, rate
from cadenza.domain.task_outcomes import describe
from cadenza.services.access import authorize_enrollment
from cadenza.services.analytics.engagement import engagement_by_step
from cadenza.services.analytics.stats import SequenceStats, StepStats, sequence_stats
from cadenza.services.analytics.variants import VariantSplit, variant_splits
from cadenza.services.context import Context
from cadenza.services.counters.figures import daily_figures, sequence_figures
from cadenza.services.lookup import fetch
from cadenza.services.sequences.catalog import load_visible
from cadenza.store.models import EmailEvent, Enrollment, Message, StepRun, Task


@dataclass(frozen=True)
class Outcomes:
    """Counts for a sequence or one of its steps; rates are None when nothing was sent."""

    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    meetings_booked: int = 0

    @property
    def rates(self) -> dict[str, float | None]:
        return email_rates(
            sent=self.sent, delivered=self.delivered, bounced=self.bounced,
            opened=self.opened, clicked=self.clicked, replied=self.replied,
        )  # fmt: skip


@dataclass(frozen=True)
class SequenceReport:
    counts: SequenceStats
    outcomes: Outcomes
    contacts_emailed: int
    unsubscribed: int
    steps: list[tuple[StepStats, Outcomes]] = field(default_factory=list)
    # A/B variants: step position -> its variants side by side (analytics/variants.py).
    variants: dict[int, VariantSplit] = field(default_factory=dict)

    @property
    def rates(self) -> dict[str, float | None]:
        return contact_rates(self.outcomes, self.contacts_emailed, self.unsubscribed)


def contact_rates(
    outcomes: Outcomes, contacts_emailed: int, unsubscribed: int
) -> dict[str, float | None]:
    """Per-contact rates beside the per-email ones: what a sales team compares (a
    sequence's analytics and the team reports share these definitions)."""
    return {
        **outcomes.rates,
        "reply_rate": rate(outcomes.replied, contacts_emailed),
        "meeting_rate": rate(outcomes.meetings_booked, contacts_emailed),
        "unsubscribe_rate": rate(unsubscribed, contacts_emailed),
    }


@dataclass(frozen=True)
class Day:
    day: date
    enrolled: int = 0
    sent: int = 0
    opened: int = 0
    replied: int = 0


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str  # enrolled, sent, open, click, reply, bounce, task_created, ..., ended
    step_position: int | None = None
    detail: str | None = None
    flagged: str | None = None  # opens and clicks a scanner or prefetch made
    variant: str | None = None  # the A/B variant a sent email carried


def sequence_report(
    ctx: Context, sequence_id: int, *, actor_id: int | None = None
) -> SequenceReport:
    # also raises when the sequence is unknown, or not the actor's to see
    counts = sequence_stats(ctx, sequence_id, actor_id=actor_id)
    engagement = engagement_by_step(ctx, sequence_id)
    figures = sequence_figures(ctx, sequence_id)
    bounced = figures.positions(BOUNCED)
    steps = []
    for step in counts.steps:
        seen = engagement.get(step.position)
        steps.append(
            (
                step,
                Outcomes(
                    sent=step.sent,
                    delivered=step.sent - bounced.get(step.position, 0),
                    bounced=bounced.get(step.position, 0),
                    opened=seen.opened if seen else 0,
                    clicked=seen.clicked if seen else 0,
                    replied=figures.step(step.position, REPLIED),
                    meetings_booked=figures.step(step.position, MEETINGS),
                ),
            )
        )
    total_bounced = sum(bounced.values())
    outcomes = Outcomes(
        sent=counts.sent,
        delivered=counts.sent - total_bounced,
        bounced=total_bounced,
        opened=sum(o.opened for _, o in steps),
        clicked=sum(o.clicked for _, o in steps),
        # Sequence-wide: a reply matched by its sender only has no message to sit on.
        replied=figures.whole(ENROLLMENTS_REPLIED),
        meetings_booked=figures.whole(ENROLLMENTS_MET),
    )
    return SequenceReport(
        counts=counts,
        outcomes=outcomes,
        contacts_emailed=figures.whole(EMAILED),
        unsubscribed=counts.unenrolled_by_reason.get(UnenrollReason.UNSUBSCRIBED, 0),
        steps=steps,
        variants=variant_splits(ctx, sequence_id),
    )


def daily_activity(
    ctx: Context, sequence_id: int, *, days: int, today: date, actor_id: int | None = None
) -> list[Day]:
    """One row per UTC day, oldest first, ending with `today`: the sequence's chart."""
    if actor_id is not None:
        with ctx.db.read() as session:
            load_visible(session, sequence_id, actor_id)
    first = today - timedelta(days=days - 1)
    found = daily_figures(ctx, sequence_id, first)
    keys = {"enrolled": DAY_ENROLLED, "sent": DAY_SENT, "opened": DAY_OPENED,
            "replied": DAY_REPLIED}  # fmt: skip
    return [
        Day(day, **{name: found.get((day, key), 0) for name, key in keys.items()})
        for day in (first + timedelta(days=i) for i in range(days))
    ]


def enrollment_timeline(
    ctx: Context, enrollment_id: int, *, actor_id: int | None = None
) -> list[TimelineEvent]:
    """Everything that happened to one enrollment, oldest first (to a member, only
    their own: someone else's answers as a missing one)."""
    with ctx.db.read() as session:
        enrollment = fetch(session, Enrollment, enrollment_id)
        authorize_enrollment(session, actor_id, enrollment, Action.READ)
        events = [TimelineEvent(enrollment.enrolled_at, "enrolled")]
        for position, subject, sent_at, bounced_at, variant in session.execute(
            select(
                StepRun.step_position,
                Message.subject,
                Message.sent_at,
                Message.bounced_at,
                Message.variant,
            )
            .join(Message, Message.step_run_id == StepRun.id)
            .where(StepRun.enrollment_id == enrollment_id, Message.sent_at.is_not(None))
        ):
            events.append(TimelineEvent(sent_at, "sent", position, subject, variant=variant))
            if bounced_at is not None:
                events.append(TimelineEvent(bounced_at, "bounced", position))
        for position, title, created, completed, status, outcome, duration, logged in (
            session.execute(
                select(
                    StepRun.step_position, Task.title, Task.created_at, Task.completed_at,
                    Task.status, Task.outcome, Task.duration_seconds, Task.logged_at,
                )
                .join(StepRun, StepRun.id == Task.step_run_id)
                .where(Task.enrollment_id == enrollment_id)
            )
        ):  # fmt: skip
            events.append(TimelineEvent(created, "task_created", position, title))
            if completed is not None:
                events.append(TimelineEvent(completed, f"task_{status}", position, title))
            if logged is not None:  # what the rep logged: docs/tasks.md
                line = describe(outcome, duration)
                events.append(TimelineEvent(logged, "task_logged", position, line, None))
        for kind, occurred, data, position in session.execute(
            select(EmailEvent.kind, EmailEvent.occurred_at, EmailEvent.data, StepRun.step_position)
            .outerjoin(Message, Message.id == EmailEvent.message_id)
            .outerjoin(StepRun, StepRun.id == Message.step_run_id)
            .where(EmailEvent.enrollment_id == enrollment_id)
            # Events of the same instant (an open and the click it carried) keep the
            # order they were recorded in: the sort below is stable.
            .order_by(EmailEvent.occurred_at, EmailEvent.id)
        ):
            data = data or {}
            detail = data.get("url") or data.get("subject") or data.get("status")
            events.append(TimelineEvent(occurred, kind, position, detail, data.get("flagged")))
        if enrollment.ended_at is not None:
            ended = enrollment.reason or str(enrollment.state)
            kind = (
                EnrollmentState.FINISHED
                if enrollment.state == EnrollmentState.FINISHED
                else EnrollmentState.UNENROLLED
            )
            events.append(TimelineEvent(enrollment.ended_at, kind, None, ended))
    return sorted(events, key=lambda e: e.at)
