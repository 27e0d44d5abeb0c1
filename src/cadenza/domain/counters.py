"""The names of a sequence's pre-aggregated figures, and which facts they count.

A sequence's page, its analytics and its statistics read these counters
(services/counters) instead of counting the sequence's enrollments, step runs, tasks,
messages and events on every request, so they answer in a time that does not grow with
the sequence. Each key names one figure; a counter row is (sequence, step position,
variant, day, key) → n: step position 0 for the figures of the sequence as a whole
(and of its messages on no step), a day only for the daily series.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cadenza.domain.enums import EnrollmentState, EventKind, StepRunStatus, TaskStatus

WHOLE_SEQUENCE = 0  # the step position of figures that belong to no step
NO_VARIANT = ""  # the variant of a step run that has none (NULL is no key)

# Only these run statuses are shown; moving between the others (pending, sending,
# paused...) changes no figure, so the engine's claims and leases write no counter.
COUNTED_RUN_STATUSES = frozenset({StepRunStatus.SENT, StepRunStatus.FAILED, StepRunStatus.UNKNOWN})
COUNTED_TASK_STATUSES = frozenset({TaskStatus.OPEN, TaskStatus.COMPLETED})

STEP_PREFIX = "steps:"  # step runs of a type, whatever their status: the step's type


def enrollment_key(state: str, reason: str | None) -> str:
    """Enrollments by state; unenrolled ones by reason too ('' for rows without one)."""
    if state == EnrollmentState.UNENROLLED:
        return f"enrollments:{state}:{reason or ''}"
    return f"enrollments:{state}"


def step_type_key(step_type: str) -> str:
    return f"{STEP_PREFIX}{step_type}"


def run_status_key(status: str) -> str | None:
    return f"runs:{status}" if status in COUNTED_RUN_STATUSES else None


def task_status_key(status: str) -> str | None:
    return f"tasks:{status}" if status in COUNTED_TASK_STATUSES else None


# A step's messages (at the step's position and variant; position 0 for messages on no
# step): bounced, and with at least one reply or booked meeting.
BOUNCED = "bounced"
REPLIED = "replied"
MEETINGS = "meetings_booked"
# The whole sequence's: enrollments with at least one reply or meeting event, and
# with at least one email sent ("contacts emailed").
ENROLLMENTS_REPLIED = "enrollments_replied"
ENROLLMENTS_MET = "enrollments_meetings_booked"
EMAILED = "emailed"
# The daily series (position 0, with a UTC day): enrolled, emails sent, human opens,
# replies.
DAY_ENROLLED, DAY_SENT, DAY_OPENED, DAY_REPLIED = "enrolled", "sent", "opened", "replied"

# Per event kind that has distinct figures: (per message, per enrollment) keys.
FIRSTS = {
    EventKind.REPLY: (REPLIED, ENROLLMENTS_REPLIED),
    EventKind.MEETING_BOOKED: (MEETINGS, ENROLLMENTS_MET),
}


def engagement_keys(kind: str) -> tuple[str, str, str]:
    """(human events, messages with one, flagged events) of an open or a click: the
    fields of analytics.engagement.Engagement."""
    return f"{kind}s", f"{kind}ed", f"flagged_{kind}s"


def is_human(data: dict[str, Any] | None) -> bool:
    """An open or click that counts: not flagged as a scanner's or too-soon fetch (the
    same test as analytics.engagement.human_event, on a row's data)."""
    return (data or {}).get("flagged") is None


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
