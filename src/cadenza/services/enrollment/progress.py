"""Moving an enrollment forward: the next step run, or the end of the sequence.

Used at enrollment, when the engine completes a step and when a task is completed,
so every path schedules with the same pure function the projection shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, false, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import Executable

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.counters import NO_VARIANT
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
from cadenza.store.prepared import Prepared, json_column

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


# A step run's first row, for all the runs one call schedules in one statement: the
# worker schedules the next step of every send of a commit that is not a sequence's last.
_NEW_RUNS = BoundRows.of(
    "new_runs", StepRun, "enrollment_id", "mailbox_id", "step_position", "step_type",
    "bulk_first", "status", "due_at", "created_at", "variant",
)  # fmt: skip
_ADD_RUNS = Prepared(
    build=lambda dialect: _NEW_RUNS.inserted(
        StepRun, dialect, attempts=literal(0, Integer()), send_ready=false()
    )
)


@dataclass(frozen=True)
class EnrollmentProgress:
    """What moving an enrollment forward reads of it, as a plain row: the worker
    schedules the next step of most of its sends, and reading their enrollments through
    the ORM (building the query, its IN list, the objects) was a tenth of a SQLite
    worker's time with two-email sequences (bench/engine.py --steps 2, docs/
    benchmarks.md). Other paths pass the ORM row itself, which has the same names."""

    id: int
    contact_id: int
    sequence_id: int
    mailbox_id: int
    state: EnrollmentState
    timezone: str
    steps_snapshot: list[Any]
    settings_snapshot: dict[str, Any]
    bulk: bool
    start_step: int

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> EnrollmentProgress:
        """From the driver's row (`Prepared.run`): SQLite gives booleans as integers."""
        (id_, contact_id, sequence_id, mailbox_id, state, timezone, steps, settings,
         bulk, start_step) = row  # fmt: skip
        return cls(
            id_, contact_id, sequence_id, mailbox_id, EnrollmentState(state), timezone,
            json_column(steps), json_column(settings), bool(bulk), start_step,
        )  # fmt: skip


# The enrollments one hand-over commit moves forward, read and locked in one statement
# compiled once (store/prepared.py), in key order: two commits never wait on each
# other in a cycle.
_PROGRESSING = BoundRows("progressing", enrollment_id=Integer())
_READ_PROGRESS = Prepared(
    build=lambda dialect: (
        select(*[getattr(Enrollment, f) for f in EnrollmentProgress.__dataclass_fields__])
        .where(Enrollment.id.in_(select(_PROGRESSING.table(dialect).c.enrollment_id)))
        .order_by(Enrollment.id)
        .with_for_update()
    )
)


def locked_progress(
    session: Session, enrollment_ids: Sequence[int]
) -> dict[int, EnrollmentProgress]:
    """The enrollments whose next step is to be scheduled, read and locked."""
    connection = session.connection()
    params = _PROGRESSING.bind([(i,) for i in sorted(set(enrollment_ids))], connection.dialect)
    rows = _READ_PROGRESS.run(connection, params).fetchall()
    return {row[0]: EnrollmentProgress.of_row(row) for row in rows}


def _loaded(session: Session, enrollment_id: int) -> Enrollment | None:
    """The session's own object of the enrollment, where it has read one: what a plain
    statement wrote must show on it."""
    loaded = session.identity_map.get(identity_key(Enrollment, enrollment_id))
    return loaded if isinstance(loaded, Enrollment) else None


def add_step_run(
    session: Session,
    enrollment: Enrollment,
    position: int,
    due_at: datetime,
    now: datetime,
) -> None:
    """`add_step_runs` of one."""
    add_step_runs(session, [(enrollment, position, due_at)], now)


def add_step_runs(
    session: Session,
    planned: Sequence[tuple[Enrollment | EnrollmentProgress, int, datetime]],
    now: datetime,
) -> None:
    """The one way a step run is created: each enrollment's step at `position`, due at
    the time given, pending (paused with a paused enrollment), counted. Written as plain
    rows in one statement, not ORM objects flushed: the worker's hand-over commit
    schedules the next step of every send that is not its sequence's last
    (bench/engine.py --steps). Where the session has an enrollment's object, its list of
    runs is expired, so a later read in the same session sees the new one."""
    if not planned:
        return
    rows = []
    for enrollment, position, due_at in planned:
        spec = enrollment.steps_snapshot[position - 1]
        status = (
            StepRunStatus.PAUSED
            if enrollment.state == EnrollmentState.PAUSED
            else StepRunStatus.PENDING
        )
        bulk_first = bool(enrollment.bulk and position == enrollment.start_step)
        variant = spec.get("variant")
        rows.append((enrollment.id, enrollment.mailbox_id, position, spec["type"], bulk_first,
                     str(status), due_at, now, variant))  # fmt: skip
        where = StepOf(enrollment.sequence_id, position, variant or NO_VARIANT, spec["type"])
        counters.run_moved(session, where, None, status)
    connection = session.connection()
    _ADD_RUNS.run(connection, _NEW_RUNS.bind(rows, connection.dialect))
    for enrollment, _, _ in planned:
        loaded = _loaded(session, enrollment.id)
        if loaded is not None:
            session.expire(loaded, ["step_runs"])


def after_step_completed(
    session: Session, enrollment: Enrollment, position: int, completed_at: datetime
) -> None:
    """`after_steps_completed` of one."""
    after_steps_completed(session, [(enrollment, position)], completed_at)


def after_steps_completed(
    session: Session,
    completed: Sequence[tuple[Enrollment | EnrollmentProgress, int]],
    completed_at: datetime,
) -> None:
    """Schedules each enrollment's step after `position`, or finishes the enrollment
    after its last one; an enrollment no longer live is left as it is."""
    planned: list[tuple[Enrollment | EnrollmentProgress, int, datetime]] = []
    for enrollment, position in completed:
        if enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
            continue
        if position >= len(enrollment.steps_snapshot):
            session.flush()
            event = enrollment_event(enrollment)
            finished = finish_enrollment(session.connection(), event, completed_at)
            loaded = _loaded(session, enrollment.id)
            if finished and loaded is not None:  # what the statement wrote, without a read
                set_committed_value(loaded, "state", EnrollmentState.FINISHED)
                set_committed_value(loaded, "ended_at", completed_at)
            continue
        following = StepSpec.from_dict(enrollment.steps_snapshot[position])
        due = schedule.next_step_due(
            completed_at,
            parse_timezone(enrollment.timezone),
            schedule.StepDelay(following.delay_days, following.delay_hours),
            SequenceSettings.from_dict(enrollment.settings_snapshot),
        )
        planned.append((enrollment, following.position, due))
    add_step_runs(session, planned, completed_at)


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
