"""Read models of enrollments: each step's state and the projected future.

The projection uses the same pure schedule function as the engine, so what the rep
is shown is what will happen (assuming tasks are completed when they are due).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    PauseReason,
    StepRunStatus,
    StepWaitReason,
    TimelineMark,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.services.access import authorize_enrollment, owner_filter
from cadenza.services.accounts.mailboxes import MISSES_REPLIES
from cadenza.services.context import Context
from cadenza.services.enrollment.control import resumed_due
from cadenza.services.read_models import copy_row
from cadenza.services.sequences.personalization import contact_values, sender_values
from cadenza.services.sequences.preview import fill_headline, readable
from cadenza.store.models import (
    Contact,
    DeliveryAttempt,
    Enrollment,
    Mailbox,
    Message,
    Sequence,
    StepRun,
    User,
)

# The values a step's template is filled with: {"contact": ..., "sender": ..., ...}.
TemplateContext = Mapping[str, Mapping[str, Any]]

# A run in one of these has a known completion time; the projection continues from it.
_DONE = {StepRunStatus.SENT, StepRunStatus.DONE}
# A run in one of these will still happen at (or after) its due time.
_AHEAD = {
    StepRunStatus.PENDING,
    StepRunStatus.PAUSED,
    StepRunStatus.SENDING,
    StepRunStatus.WAITING_TASK,
}


@dataclass(frozen=True)
class StepLine:
    position: int
    type: str
    title: str
    status: StepRunStatus | TimelineMark  # PROJECTED: a step not yet scheduled
    due_at: datetime | None
    completed_at: datetime | None
    wait_reason: StepWaitReason | None = None
    last_error: str | None = None
    bounced_at: datetime | None = None  # the step's email hard-bounced
    variant: str | None = None  # the A/B variant this enrollment gets at the step

    @property
    def shown_status(self) -> StepRunStatus | TimelineMark:
        """What a person is shown: a bounced email's run stays "sent" in the database
        (it did leave, docs/signals.md), but "sent" alone would read as a success."""
        return TimelineMark.BOUNCED if self.bounced_at is not None else self.status


@dataclass(frozen=True)
class EnrollmentSummary:
    """An enrollment's own values, and its contact's address: a row of a listing, and
    the head of an `EnrollmentView`."""

    id: int
    contact_id: int
    sequence_id: int
    mailbox_id: int
    enrolled_by_id: int
    timezone: str
    state: EnrollmentState
    reason: UnenrollReason | None
    reason_detail: str | None
    start_step: int
    steps_snapshot: list[Any]
    settings_snapshot: dict[str, Any]
    token_values: dict[str, Any]
    bulk: bool
    needs_attention: bool
    send_at: datetime | None
    enrolled_at: datetime
    paused_at: datetime | None
    resume_at: datetime | None
    ended_at: datetime | None
    cause_event_id: int | None
    source_record_id: int | None
    contact_email: str | None

    @classmethod
    def of(cls, row: Enrollment) -> EnrollmentSummary:
        return copy_row(cls, row, contact_email=row.contact.email)


def pause_reason(enrollment: Enrollment | EnrollmentSummary) -> PauseReason | None:
    """Why a paused enrollment waits: an out-of-office reply (it resumes by itself at
    `resume_at`) or a person (it waits until someone resumes it); None when not paused."""
    if enrollment.state != EnrollmentState.PAUSED:
        return None
    return PauseReason.OUT_OF_OFFICE if enrollment.resume_at is not None else PauseReason.MANUAL


@dataclass(frozen=True)
class StepProblem:
    """A failed or unknown step told plainly: which step, what happened, when, and the
    server's own answer, so a person can act without reading the database."""

    position: int
    type: str
    title: str
    status: StepRunStatus  # FAILED or UNKNOWN
    explanation: str
    server_reply: str | None
    at: datetime | None  # the last attempt (or when the enrollment ended)
    attempts: int


def _explain(run: StepRun, code: int | None, enrollment: Enrollment) -> str:
    ended = (
        " The enrollment ended (send failed)."
        if enrollment.reason == UnenrollReason.SEND_FAILED
        else ""
    )
    if run.status == StepRunStatus.UNKNOWN:
        return (
            "It is not known whether this email left: the sending was interrupted "
            f"({run.last_error or 'no answer'}). It is never resent automatically; check "
            "the mailbox's Sent folder before sending it again."
        )
    if code is not None and 500 <= code < 600:
        return f"The mail server refused this email permanently (code {code}).{ended}"
    if code is not None and 400 <= code < 500:
        return (
            f"The mail server kept answering with a temporary error (code {code}) and "
            f"gave up after {run.attempts} attempt(s).{ended}"
        )
    return f"This step could not be sent: {run.last_error or 'no reason was recorded'}.{ended}"


def _problems(session, enrollment: Enrollment, lines: list[StepLine]) -> list[StepProblem]:
    bad = [
        r for r in enrollment.step_runs if r.status in (StepRunStatus.FAILED, StepRunStatus.UNKNOWN)
    ]
    if not bad:
        return []
    titles = {line.position: line.title for line in lines}
    last = {}
    for run_id, code, reply, at in session.execute(
        select(Message.step_run_id, DeliveryAttempt.code, DeliveryAttempt.reply, DeliveryAttempt.at)
        .join(DeliveryAttempt, DeliveryAttempt.message_id == Message.id)
        .where(Message.step_run_id.in_([r.id for r in bad]))
        .order_by(DeliveryAttempt.attempt)
    ):
        last[run_id] = (code, reply, at)
    problems = []
    for run in sorted(bad, key=lambda r: r.step_position):
        code, reply, at = last.get(run.id, (None, None, None))
        server = f"{code or ''} {reply or ''}".strip() or None
        problems.append(
            StepProblem(
                position=run.step_position,
                type=run.step_type,
                title=titles.get(run.step_position, f"step {run.step_position}"),
                status=run.status,
                explanation=_explain(run, code, enrollment),
                server_reply=server
                or (run.last_error if run.status == StepRunStatus.FAILED else None),
                at=at or enrollment.ended_at,
                attempts=run.attempts,
            )
        )
    return problems


@dataclass(frozen=True)
class EnrollmentView:
    enrollment: EnrollmentSummary
    contact_email: str | None
    contact_name: str
    sequence_name: str
    steps: list[StepLine]
    problems: list[StepProblem] = field(default_factory=list)

    @property
    def pause_reason(self) -> PauseReason | None:
        return pause_reason(self.enrollment)


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
        return readable(source) if context is None else fill_headline(source, context)
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
    held = False  # a person's pause: the steps still come, at dates no one knows yet
    for spec in specs:
        if spec.position < enrollment.start_step:
            continue
        run = runs.get(spec.position)
        if run is not None:
            email = sent.get(spec.position)
            due = run.due_at
            if run.status == StepRunStatus.PAUSED and enrollment.state == EnrollmentState.PAUSED:
                # The stored due time will not happen while paused: an out-of-office
                # pause resumes at resume_at (then the rest of the wait), a person's
                # pause has no date until someone resumes it.
                due = (
                    resumed_due(run, enrollment, enrollment.resume_at, tz, settings)
                    if enrollment.resume_at is not None
                    else None
                )
            lines.append(
                StepLine(
                    spec.position,
                    str(spec.type),
                    _title(spec, email.subject if email else None, context),
                    run.status,
                    due,
                    run.completed_at,
                    run.wait_reason,
                    run.last_error,
                    email.bounced_at if email else None,
                    spec.variant,
                )
            )
            if run.status in _DONE:
                anchor = run.completed_at
            elif run.status in _AHEAD and due is not None:
                anchor = max(due, now)
            else:
                anchor = None  # failed, cancelled, unknown or held: no date follows
                held = run.status == StepRunStatus.PAUSED and live
            continue
        if not live or (anchor is None and not held):
            break
        due = (
            None
            if anchor is None
            else schedule.next_step_due(
                anchor, tz, schedule.StepDelay(spec.delay_days, spec.delay_hours), settings
            )
        )
        title = _title(spec, None, context)
        lines.append(
            StepLine(
                spec.position,
                str(spec.type),
                title,
                TimelineMark.PROJECTED,
                due,
                None,
                variant=spec.variant,
            )
        )
        anchor = due
    return lines


def _sent_emails(session, enrollment: Enrollment) -> dict[int, SentEmail]:
    rows = session.execute(_SENT, {"enrollment_id": enrollment.id})
    return {position: SentEmail(subject, bounced) for position, subject, bounced in rows}


_SENT = (
    select(StepRun.step_position, Message.subject, Message.bounced_at)
    .join(Message, Message.step_run_id == StepRun.id)
    .where(StepRun.enrollment_id == bindparam("enrollment_id"))
)


def _template_context(enrollment: Enrollment, enroller: User) -> TemplateContext:
    """The values the engine will fill this enrollment's steps with (render_step)."""
    return build_context(
        contact_values(enrollment.contact),
        sender_values(enroller, enrollment.mailbox),
        enrollment.token_values or {},
    )


def _enrollment_with_enroller(session, enrollment_id: int) -> tuple[Enrollment, User] | None:
    """The enrollment with everything its view shows, in one statement: its contact,
    sequence, mailbox, step runs and enroller. The mailbox and the enroller stay
    referenced, so the policy's look-ups of them (the mailbox's owner, the actor when
    it is the enroller) are answered from the session, not by the database again."""
    found = session.execute(_WITH_ENROLLER, {"enrollment_id": enrollment_id}).unique().first()
    return None if found is None else (found[0], found[1])


# Built once: the statement is the same for every request, only its parameter changes.
_WITH_ENROLLER = (
    select(Enrollment, User)
    .join(User, User.id == Enrollment.enrolled_by_id)
    .where(Enrollment.id == bindparam("enrollment_id"))
    .options(
        joinedload(Enrollment.contact),
        joinedload(Enrollment.sequence),
        joinedload(Enrollment.mailbox),
        joinedload(Enrollment.step_runs),
    )
)


def get_enrollment(
    ctx: Context, enrollment_id: int, *, actor_id: int | None = None
) -> EnrollmentView:
    with ctx.db.read() as session:
        found = _enrollment_with_enroller(session, enrollment_id)
        if found is None:
            raise CadenzaError(
                ErrorCode.ENROLLMENT_NOT_FOUND, f"enrollment {enrollment_id} does not exist"
            )
        enrollment, enroller = found
        authorize_enrollment(session, actor_id, enrollment, Action.READ)
        contact = enrollment.contact
        name = " ".join(p for p in (contact.firstname, contact.lastname) if p)
        lines = step_lines(
            enrollment,
            ctx.clock.now(),
            _sent_emails(session, enrollment),
            _template_context(enrollment, enroller),
        )
        return EnrollmentView(
            enrollment=EnrollmentSummary.of(enrollment),
            contact_email=contact.email,
            contact_name=name or (contact.email or f"contact {contact.id}"),
            sequence_name=enrollment.sequence.name,
            steps=lines,
            problems=_problems(session, enrollment, lines),
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
    query: str | None = None,
    newest_first: bool = False,
    actor_id: int | None = None,
) -> list[EnrollmentSummary]:
    """Keyset pages by id: `after_id` is the last id of the previous page, in either
    order (newest first: ids below it), so inserts never shift or repeat a row.
    `query` searches the contact's email and name and the sequence's name. A member
    acting sees the enrollments they made or that send from their mailbox."""
    if state is not None and state not in {s.value for s in EnrollmentState}:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"state must be one of {', '.join(s.value for s in EnrollmentState)}",
        )
    order = Enrollment.id.desc() if newest_first else Enrollment.id
    query_rows = select(Enrollment).order_by(order).limit(limit)
    if sequence_id is not None:
        query_rows = query_rows.where(Enrollment.sequence_id == sequence_id)
    if contact_id is not None:
        query_rows = query_rows.where(Enrollment.contact_id == contact_id)
    if state is not None:
        query_rows = query_rows.where(Enrollment.state == state)
    if enrolled_by_id is not None:
        query_rows = query_rows.where(Enrollment.enrolled_by_id == enrolled_by_id)
    if after_id is not None:
        query_rows = query_rows.where(
            Enrollment.id < after_id if newest_first else Enrollment.id > after_id
        )
    if query and "\x00" in query:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the search contains a NUL character")
    if query and query.strip():
        query_rows = query_rows.where(_matching(query.strip().lower()))
    with ctx.db.read() as session:
        own = owner_filter(session, actor_id, Resource.ENROLLMENT)
        if own is not None:
            their_mailboxes = select(Mailbox.id).where(Mailbox.owner_id == own)
            query_rows = query_rows.where(
                or_(Enrollment.enrolled_by_id == own, Enrollment.mailbox_id.in_(their_mailboxes))
            )
        rows = session.scalars(query_rows.options(selectinload(Enrollment.contact)))
        return [EnrollmentSummary.of(row) for row in rows]


def _matching(text: str):
    """The contact's email or name, or the sequence's name, contains `text`."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    name = func.lower(
        func.coalesce(Contact.firstname, "") + " " + func.coalesce(Contact.lastname, "")
    )
    contact = exists().where(
        Contact.id == Enrollment.contact_id,
        or_(
            Contact.email_key.like(pattern, escape="\\"),
            name.like(pattern, escape="\\"),
        ),
    )
    sequence = exists().where(
        Sequence.id == Enrollment.sequence_id,
        func.lower(Sequence.name).like(pattern, escape="\\"),
    )
    return or_(contact, sequence)


@dataclass(frozen=True)
class UnwatchedSender:
    """A mailbox whose replies are not detected, and how many live enrollments of one
    sequence send from it: the sequence page warns that they keep following up."""

    mailbox_id: int
    from_email: str
    live: int


def live_without_reply_detection(
    ctx: Context, sequence_id: int, *, actor_id: int | None = None
) -> list[UnwatchedSender]:
    """Only the mailboxes the actor may see (a member's own; an admin's, all)."""
    query = (
        select(Mailbox.id, Mailbox.from_email, func.count())
        .join(Enrollment, Enrollment.mailbox_id == Mailbox.id)
        .where(
            Enrollment.sequence_id == sequence_id,
            Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
            MISSES_REPLIES,
        )
        .group_by(Mailbox.id, Mailbox.from_email)
        .order_by(Mailbox.id)
    )
    with ctx.db.read() as session:
        owner = owner_filter(session, actor_id, Resource.MAILBOX)
        if owner is not None:
            query = query.where(Mailbox.owner_id == owner)
        return [UnwatchedSender(*row) for row in session.execute(query)]
