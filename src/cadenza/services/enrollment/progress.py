"""Moving an enrollment forward: the next step run, or the end of the sequence.

Used at enrollment, when the engine completes a step and when a task is completed,
so every path schedules with the same pure function the projection shows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Integer, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    MessageStatus,
    StepRunStatus,
    UnenrollReason,
    WebhookEvent,
)
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.services.counters import deltas as counters
from cadenza.services.counters.deltas import StepOf
from cadenza.services.enrollment.control import end_enrollment
from cadenza.services.events_out import triggers, webhooks
from cadenza.services.events_out.webhooks import enrollment_event
from cadenza.store.bound_rows import BoundRows, checked_after_lookup
from cadenza.store.models import Enrollment, Message, StepRun
from cadenza.store.prepared import Prepared

# Compiled once: the worker finishes an enrollment with every last step it sends, and
# all the enrollments of one hand-over commit in one statement (store/bound_rows.py).
# One statement per live state, so that the state each leaves is known (for its
# counters) without reading the rows: the first matches all but enrollments paused
# meanwhile.
_FINISHING = BoundRows("finishing", enrollment_id=Integer())


def _finish_statement(state: str) -> Prepared:
    def build(dialect: str) -> Executable:
        rows = _FINISHING.table(dialect)
        return (
            update(Enrollment)
            .where(
                Enrollment.id.in_(select(rows.c.enrollment_id)),
                checked_after_lookup(Enrollment.state == state),
            )
            .values(state=str(EnrollmentState.FINISHED), ended_at=bindparam("now"))
            .returning(Enrollment.id)
            .execution_options(synchronize_session=False)
        )

    return Prepared(build=build)


_FINISH = {state: _finish_statement(str(state)) for state in LIVE_ENROLLMENT_STATES}


def add_step_run(
    session: Session,
    enrollment: Enrollment,
    position: int,
    due_at: datetime,
    now: datetime,
) -> StepRun:
    spec = enrollment.steps_snapshot[position - 1]
    paused = enrollment.state == EnrollmentState.PAUSED
    run = StepRun(
        enrollment_id=enrollment.id,
        mailbox_id=enrollment.mailbox_id,
        step_position=position,
        step_type=spec["type"],
        bulk_first=enrollment.bulk and position == enrollment.start_step,
        status=str(StepRunStatus.PAUSED if paused else StepRunStatus.PENDING),
        due_at=due_at,
        created_at=now,
        variant=spec.get("variant"),
    )
    session.add(run)
    counters.run_moved(session, StepOf.of(run, enrollment.sequence_id), None, run.status)
    return run


def after_step_completed(
    session: Session, enrollment: Enrollment, position: int, completed_at: datetime
) -> StepRun | None:
    """Schedules the step after `position`, or finishes the enrollment after the last one."""
    if enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
        return None
    if position >= len(enrollment.steps_snapshot):
        session.flush()
        if finish_enrollment(session.connection(), enrollment_event(enrollment), completed_at):
            # what the statement wrote, so the loaded row stays true without a read
            set_committed_value(enrollment, "state", EnrollmentState.FINISHED)
            set_committed_value(enrollment, "ended_at", completed_at)
        return None
    following = StepSpec.from_dict(enrollment.steps_snapshot[position])
    due = schedule.next_step_due(
        completed_at,
        parse_timezone(enrollment.timezone),
        schedule.StepDelay(following.delay_days, following.delay_hours),
        SequenceSettings.from_dict(enrollment.settings_snapshot),
    )
    return add_step_run(session, enrollment, following.position, due, completed_at)


def finish_enrollment(connection: Connection, enrollment: dict, finished_at: datetime) -> bool:
    """`finish_enrollments` of one: False when it was no longer live."""
    return bool(finish_enrollments(connection, [enrollment], finished_at))


def finish_enrollments(
    connection: Connection, enrollments: list[dict], finished_at: datetime
) -> list[dict]:
    """The one way an enrollment finishes: its last step done, it ends, and says so.

    Each of `enrollments` is what enrollment events carry (`webhooks.enrollment_event`):
    the worker builds it from its claim without loading the row, other paths from the
    row. Plain statements on the caller's connection, one per live state for all of
    them, since the worker's hand-over commit runs this for every last step it sends.
    Returns those that finished; one that ended meanwhile is left as it is.
    """
    waiting = {e["enrollment_id"]: e for e in enrollments}
    finished: list[dict] = []
    for state, finish in _FINISH.items():
        if not waiting:
            break
        params = {
            **_FINISHING.bind([(i,) for i in waiting], connection.dialect),
            "now": finished_at,
        }
        for (enrollment_id,) in finish.run(connection, params).fetchall():
            enrollment = waiting.pop(enrollment_id)
            finished.append(enrollment)
            counters.enrollment_moved(
                connection,
                enrollment["sequence_id"],
                (state, None),
                (EnrollmentState.FINISHED, None),
            )
    for enrollment in finished:
        event = {**enrollment, "state": str(EnrollmentState.FINISHED)}
        webhooks.emit(connection, finished_at, WebhookEvent.FINISHED, event)
        ended = {
            "enrollment_id": event["enrollment_id"],
            "contact_id": event["contact_id"],
            "sequence_id": event["sequence_id"],
            "state": event["state"],
            "reason": None,
        }
        triggers.enrollment_ended(connection, finished_at, ended)
    return finished


def mark_unknown(
    session: Session, run: StepRun, enrollment: Enrollment, message: Message, why: str
) -> None:
    message.status = MessageStatus.UNKNOWN
    counters.run_moved(
        session, StepOf.of(run, enrollment.sequence_id), run.status, StepRunStatus.UNKNOWN
    )
    run.status, run.last_error = StepRunStatus.UNKNOWN, why
    run.locked_by = run.locked_until = None
    enrollment.needs_attention = True


def fail_step(
    session: Session, ctx, run: StepRun, enrollment: Enrollment, reason: str | None
) -> None:
    """A step that cannot be sent ends the enrollment, flagged, with the reason kept."""
    counters.run_moved(
        session, StepOf.of(run, enrollment.sequence_id), run.status, StepRunStatus.FAILED
    )
    run.status, run.last_error = StepRunStatus.FAILED, reason
    run.locked_by = run.locked_until = None
    enrollment.needs_attention = True
    if enrollment.state in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
        end_enrollment(session, ctx, enrollment, UnenrollReason.SEND_FAILED, reason)
