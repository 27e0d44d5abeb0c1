"""What a rep logs when a call or a LinkedIn touch is done: the outcome, how long, notes.

Pure rules: which outcomes a task type takes (the built-in ones plus the team's own),
the limits on what is logged, and which outcomes end the enrollment. The services look
the team's outcomes up and apply these rules (services/enrollment/task_log.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cadenza.domain.enums import CallOutcome, LinkedInTouch, TaskKind
from cadenza.domain.errors import CadenzaError, ErrorCode

# The outcomes every team has, per task type; a team's own come on top (task_outcomes).
BUILT_IN: Mapping[TaskKind, tuple[str, ...]] = {
    TaskKind.CALL: tuple(CallOutcome),
    TaskKind.LINKEDIN: tuple(LinkedInTouch),
    TaskKind.TODO: (),
    TaskKind.EMAIL: (),
}
# The task types a team may add outcomes to: an email task's outcome is the email itself.
CUSTOM_TYPES = (TaskKind.CALL, TaskKind.LINKEDIN, TaskKind.TODO)
# Ending unless a sequence lists its own (SequenceSettings.unenroll_on_outcomes).
DEFAULT_ENDING: tuple[str, ...] = (CallOutcome.MEETING_BOOKED, CallOutcome.NOT_INTERESTED)

KEY = re.compile(r"[a-z][a-z0-9_]{0,49}")
MAX_LABEL = 100
MAX_NOTES = 10_000  # characters
MAX_DURATION_SECONDS = 24 * 3600
MAX_CUSTOM_OUTCOMES = 100  # per installation


@dataclass(frozen=True)
class OutcomeDef:
    """One outcome a task type takes: built in, or one of the team's (custom)."""

    key: str
    label: str
    task_type: TaskKind
    ends_enrollment: bool
    custom: bool


def label_of(key: str) -> str:
    return key.replace("_", " ").capitalize()


def built_in(task_type: TaskKind) -> list[OutcomeDef]:
    return [
        OutcomeDef(key, label_of(key), task_type, key in DEFAULT_ENDING, False)
        for key in BUILT_IN[task_type]
    ]


def check_key(key: object, field: str = "key") -> str:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{field} must be 1-50 lower-case letters, digits or _, starting with a letter",
            {"field": field},
        )
    return key


def check_new_outcome(key: str, label: str, task_type: str) -> tuple[str, str, TaskKind]:
    """A team's new outcome: a fresh key (not a built-in one of any type), a label."""
    check_key(key)
    try:
        kind = TaskKind(task_type)
    except ValueError:
        kind = None
    if kind not in CUSTOM_TYPES:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"task_type must be one of {', '.join(CUSTOM_TYPES)}",
            {"field": "task_type"},
        )
    assert kind is not None
    if any(key in keys for keys in BUILT_IN.values()):
        raise CadenzaError(ErrorCode.CONFLICT, f"{key!r} is a built-in outcome", {"key": key})
    return key, check_label(label), kind


def check_label(label: str) -> str:
    cleaned = " ".join((label or "").split())
    if not cleaned or len(cleaned) > MAX_LABEL:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"label must be 1-{MAX_LABEL} characters",
            {"field": "label"},
        )
    return cleaned


@dataclass(frozen=True)
class TaskLog:
    """What is logged with a completed task; every part optional."""

    outcome: str | None = None
    duration_seconds: int | None = None
    notes: str | None = None

    @property
    def empty(self) -> bool:
        return self.outcome is None and self.duration_seconds is None and not self.notes


def check_log(log: TaskLog, task_type: str, outcomes: Iterable[OutcomeDef]) -> TaskLog:
    """Refuses an outcome the task's type does not take, a duration outside 0..24 h and
    notes over the limit; returns the log with its notes trimmed (blank: none)."""
    if log.outcome is not None:
        known = {o.key for o in outcomes if o.task_type == task_type}
        if log.outcome not in known:
            raise CadenzaError(
                ErrorCode.UNKNOWN_OUTCOME,
                f"{log.outcome!r} is not an outcome of a {task_type} task"
                + (f" (one of: {', '.join(sorted(known))})" if known else " (it has none)"),
                {"outcome": log.outcome, "allowed": sorted(known)},
            )
    duration = log.duration_seconds
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int)
        or not 0 <= duration <= MAX_DURATION_SECONDS
    ):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"duration_seconds must be a whole number from 0 to {MAX_DURATION_SECONDS}",
            {"field": "duration_seconds"},
        )
    notes = log.notes.strip() if log.notes else None
    if notes and len(notes) > MAX_NOTES:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"notes must be at most {MAX_NOTES} characters",
            {"field": "notes", "limit": MAX_NOTES},
        )
    if notes and "\x00" in notes:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "notes must not contain NUL", {"field": "notes"}
        )
    return TaskLog(log.outcome, duration, notes or None)


def ends_enrollment(
    outcome: str | None,
    sequence_list: Iterable[str] | None,
    outcomes: Iterable[OutcomeDef],
) -> bool:
    """A sequence that lists its ending outcomes ends on exactly those; otherwise the
    team's ending ones do (meeting booked, not interested, and those marked ending)."""
    if outcome is None:
        return False
    if sequence_list is not None:
        return outcome in set(sequence_list)
    return any(o.key == outcome and o.ends_enrollment for o in outcomes)


def describe(outcome: str | None, duration_seconds: int | None) -> str | None:
    """The short line a timeline shows: "Connected · 4 min 05 s"."""
    parts = []
    if outcome:
        parts.append(label_of(outcome))
    if duration_seconds is not None:
        minutes, seconds = divmod(duration_seconds, 60)
        parts.append(f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s")
    return " · ".join(parts) or None
