"""Read models of enrollments: each step's state and the projected future.

The projection uses the same pure schedule function as the engine, so what the rep
is shown is what will happen (assuming tasks are completed when they are due).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from cadenza.domain import schedule, templates
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import EnrollmentState, StepRunStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.services.access import authorize_enrollment, owner_filter
from cadenza.services.context import Context
from cadenza.services.personalization import contact_values, sender_values
from cadenza.store.models import Enrollment, Mailbox, Message, StepRun, User

# The values a step's template is filled with: {"contact": ..., "sender": ..., ...}.
TemplateContext = Mapping[str, Mapping[str, Any]]

# A run in one of these has a known completion time; the projection continues from it.
_DONE = {str(StepRunStatus.SENT), str(StepRunStatus.DONE)}
# A run in one of these will still happen at (or after) its due time.
_AHEAD = {
    str(StepRunStatus.PENDING),
    str(StepRunStatus.PAUSED),
    str(StepRunStatus.SENDING),
    str(StepRunStatus.WAITING_TASK),
}


@dataclass(frozen=True)
class StepLine:
    position: int
    type: str
    title: str
    status: str  # a step run status, or "projected" for a step not yet scheduled
    due_at: datetime | None
    completed_at: datetime | None
    wait_reason: str | None = None
    last_error: str | None = None
    bounced_at: datetime | None = None  # the step's email hard-bounced

    @property
    def shown_status(self) -> str:
        """What a person is shown: a bounced email's run stays "sent" in the database
        (it did leave, docs/signals.md), but "sent" alone would read as a success."""
        return "bounced" if self.bounced_at is not None else self.status


@dataclass(frozen=True)
class EnrollmentView:
    enrollment: Enrollment
    contact_email: str | None
    contact_name: str
    sequence_name: str
    steps: list[StepLine]


@dataclass(frozen=True)
class SentEmail:
    subject: str
    bounced_at: datetime | None = None


def _title(spec: StepSpec, sent_subject: str | None, context: TemplateContext | None) -> str:
    """What went out, once it has; before that the step's template filled for the
    contact, or the raw template when it cannot be (a token deleted since, say)."""
    if sent_subject:
        return sent_subject
    source = spec.subject or spec.task_title
    if source:
        if context is None:
            return source
        try:
            return templates.render_subject(source, context) or source
        except CadenzaError:
            return source
    if spec.thread_with_step:
        return f"reply in the thread of step {spec.thread_with_step}"
    return f"{spec.type} step"


def step_lines(
    enrollment: Enrollment,
    now: datetime,
    sent: Mapping[int, SentEmail] | None = None,
    context: TemplateContext | None = None,
) -> list[StepLine]:
    """`sent`: each step's message (subject it went out with, bounce), by step position;
    `context`: the values to fill pending titles with (None: show the templates)."""
    sent = sent or {}
    specs = [StepSpec.from_dict(s) for s in enrollment.steps_snapshot]
    runs = {r.step_position: r for r in enrollment.step_runs}
    tz = parse_timezone(enrollment.timezone)
    settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
    live = enrollment.state in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED)
    lines: list[StepLine] = []
    anchor: datetime | None = None  # completion time (real or projected) of the step before
    for spec in specs:
        if spec.position < enrollment.start_step:
            continue
        run = runs.get(spec.position)
        if run is not None:
            email = sent.get(spec.position)
            lines.append(
                StepLine(
                    spec.position,
                    str(spec.type),
                    _title(spec, email.subject if email else None, context),
                    run.status,
                    run.due_at,
                    run.completed_at,
                    run.wait_reason,
                    run.last_error,
                    email.bounced_at if email else None,
                )
            )
            if run.status in _DONE:
                anchor = run.completed_at
            elif run.status in _AHEAD:
                anchor = max(run.due_at, now)
            else:
                anchor = None  # failed, cancelled or unknown: nothing follows
            continue
        if not live or anchor is None:
            break
        due = schedule.next_step_due(
            anchor, tz, schedule.StepDelay(spec.delay_days, spec.delay_hours), settings
        )
        title = _title(spec, None, context)
        lines.append(StepLine(spec.position, str(spec.type), title, "projected", due, None))
        anchor = due
    return lines


def _sent_emails(session, enrollment: Enrollment) -> dict[int, SentEmail]:
    rows = session.execute(
        select(StepRun.step_position, Message.subject, Message.bounced_at)
        .join(Message, Message.step_run_id == StepRun.id)
        .where(StepRun.enrollment_id == enrollment.id)
    )
    return {position: SentEmail(subject, bounced) for position, subject, bounced in rows}


def _template_context(session, enrollment: Enrollment) -> TemplateContext:
    """The values the engine will fill this enrollment's steps with (compose.render_step)."""
    user = session.get(User, enrollment.enrolled_by_id)
    mailbox = session.get(Mailbox, enrollment.mailbox_id)
    return build_context(
        contact_values(enrollment.contact),
        sender_values(user, mailbox),
        enrollment.token_values or {},
    )


def get_enrollment(
    ctx: Context, enrollment_id: int, *, actor_id: int | None = None
) -> EnrollmentView:
    with ctx.db.read() as session:
        enrollment = session.scalar(
            select(Enrollment)
            .where(Enrollment.id == enrollment_id)
            .options(
                selectinload(Enrollment.step_runs),
                selectinload(Enrollment.contact),
                selectinload(Enrollment.sequence),
            )
        )
        if enrollment is None:
            raise CadenzaError(
                ErrorCode.ENROLLMENT_NOT_FOUND, f"enrollment {enrollment_id} does not exist"
            )
        authorize_enrollment(session, actor_id, enrollment, Action.READ)
        contact = enrollment.contact
        name = " ".join(p for p in (contact.firstname, contact.lastname) if p)
        return EnrollmentView(
            enrollment=enrollment,
            contact_email=contact.email,
            contact_name=name or (contact.email or f"contact {contact.id}"),
            sequence_name=enrollment.sequence.name,
            steps=step_lines(
                enrollment,
                ctx.clock.now(),
                _sent_emails(session, enrollment),
                _template_context(session, enrollment),
            ),
        )


def list_enrollments(
    ctx: Context,
    *,
    sequence_id: int | None = None,
    contact_id: int | None = None,
    state: str | None = None,
    enrolled_by_id: int | None = None,
    limit: int = 100,
    after_id: int | None = None,
    actor_id: int | None = None,
) -> list[Enrollment]:
    """A member acting sees the enrollments they made or that send from their mailbox."""
    if state is not None and state not in {s.value for s in EnrollmentState}:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"state must be one of {', '.join(s.value for s in EnrollmentState)}",
        )
    query = select(Enrollment).order_by(Enrollment.id).limit(limit)
    if sequence_id is not None:
        query = query.where(Enrollment.sequence_id == sequence_id)
    if contact_id is not None:
        query = query.where(Enrollment.contact_id == contact_id)
    if state is not None:
        query = query.where(Enrollment.state == state)
    if enrolled_by_id is not None:
        query = query.where(Enrollment.enrolled_by_id == enrolled_by_id)
    if after_id is not None:
        query = query.where(Enrollment.id > after_id)
    with ctx.db.read() as session:
        own = owner_filter(session, actor_id, Resource.ENROLLMENT)
        if own is not None:
            their_mailboxes = select(Mailbox.id).where(Mailbox.owner_id == own)
            query = query.where(
                or_(Enrollment.enrolled_by_id == own, Enrollment.mailbox_id.in_(their_mailboxes))
            )
        return list(session.scalars(query.options(selectinload(Enrollment.contact))))
