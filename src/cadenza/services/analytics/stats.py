"""How a sequence is doing: enrollments by state, and each step's sends and tasks.

Read from the sequence's counters (services/counters), which the services that change
enrollments, step runs and tasks keep: a sequence with a hundred thousand enrollments
answers as fast as one with ten. Step counts are of step runs (not messages) because a
step can fail without ever producing a message, e.g. when its template cannot render.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza.domain.counters import enrollment_key, run_status_key, task_status_key
from cadenza.domain.enums import EnrollmentState, StepRunStatus, TaskStatus
from cadenza.services.context import Context
from cadenza.services.counters.figures import sequence_figures
from cadenza.services.sequences.catalog import load_visible


@dataclass(frozen=True)
class StepStats:
    position: int
    type: str
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    tasks_completed: int = 0
    tasks_open: int = 0


@dataclass(frozen=True)
class SequenceStats:
    sequence_id: int
    enrolled: int
    active: int
    paused: int
    finished: int
    unenrolled: int
    unenrolled_by_reason: dict[str, int]
    sent: int
    failed: int
    unknown: int
    steps: list[StepStats] = field(default_factory=list)


# An unenrollment always records why; this only names rows written before that rule.
UNSPECIFIED_REASON = "unspecified"


def sequence_stats(ctx: Context, sequence_id: int, *, actor_id: int | None = None) -> SequenceStats:
    """Counts every enrollment the sequence ever had, including finished and unenrolled
    ones; for an actor who may see the sequence (a private one of another's is not found)."""
    with ctx.db.read() as session:
        sequence = load_visible(session, sequence_id, actor_id)
        types = {s.position: s.type for s in sequence.steps}
    figures = sequence_figures(ctx, sequence_id)
    # Enrollments run from snapshots, so runs may exist for positions the sequence no
    # longer has (it was shortened later); those still count, with their run's type.
    for position, step_type in figures.step_types().items():
        types.setdefault(position, step_type)
    steps = [
        StepStats(
            position=position,
            type=types[position],
            sent=figures.step(position, str(run_status_key(StepRunStatus.SENT))),
            failed=figures.step(position, str(run_status_key(StepRunStatus.FAILED))),
            unknown=figures.step(position, str(run_status_key(StepRunStatus.UNKNOWN))),
            tasks_completed=figures.step(position, str(task_status_key(TaskStatus.COMPLETED))),
            tasks_open=figures.step(position, str(task_status_key(TaskStatus.OPEN))),
        )
        for position in sorted(types)
    ]
    states = {state: figures.whole(enrollment_key(state, None)) for state in EnrollmentState}
    unenrolled = figures.with_prefix(enrollment_key(EnrollmentState.UNENROLLED, None))
    states[EnrollmentState.UNENROLLED] = sum(unenrolled.values())
    reasons = {reason or UNSPECIFIED_REASON: n for reason, n in unenrolled.items()}
    return SequenceStats(
        sequence_id=sequence_id,
        enrolled=sum(states.values()),
        active=states[EnrollmentState.ACTIVE],
        paused=states[EnrollmentState.PAUSED],
        finished=states[EnrollmentState.FINISHED],
        unenrolled=states[EnrollmentState.UNENROLLED],
        unenrolled_by_reason=reasons,
        sent=sum(s.sent for s in steps),
        failed=sum(s.failed for s in steps),
        unknown=sum(s.unknown for s in steps),
        steps=steps,
    )
