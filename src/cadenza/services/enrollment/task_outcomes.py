"""The outcomes a task may be logged with: the built-in ones and the team's own.

Admins add, relabel, mark as ending or remove the team's outcomes; everyone reads them.
A removed outcome stays on the tasks logged with it (tasks.outcome is its key, as text),
so reports keep counting them.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain import task_outcomes as rules
from cadenza.domain.enums import TaskKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.task_outcomes import OutcomeDef
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.store.models import TaskOutcome


def _view(row: TaskOutcome) -> OutcomeDef:
    return OutcomeDef(row.key, row.label, TaskKind(row.task_type), row.ends_enrollment, True)


def known_outcomes(session: Session) -> list[OutcomeDef]:
    """Every outcome of every task type, built-in first (the order forms show them)."""
    built = [o for kind in TaskKind for o in rules.built_in(kind)]
    custom = session.scalars(select(TaskOutcome).order_by(TaskOutcome.task_type, TaskOutcome.id))
    return built + [_view(row) for row in custom]


def list_outcomes(
    ctx: Context, *, task_type: str | None = None, actor_id: int | None = None
) -> list[OutcomeDef]:
    if task_type is not None and task_type not in {k.value for k in TaskKind}:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"task_type must be one of {', '.join(TaskKind)}",
            {"field": "task_type"},
        )
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.TASK_OUTCOME, Action.READ)
        found = known_outcomes(session)
    return [o for o in found if task_type is None or o.task_type == task_type]


def add_outcome(
    ctx: Context,
    key: str,
    label: str,
    task_type: str,
    *,
    ends_enrollment: bool = False,
    actor_id: int | None = None,
) -> OutcomeDef:
    key, label, kind = rules.check_new_outcome(key, label, task_type)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TASK_OUTCOME, Action.CREATE)
        count = session.scalar(select(func.count()).select_from(TaskOutcome)) or 0
        if count >= rules.MAX_CUSTOM_OUTCOMES:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"a team has at most {rules.MAX_CUSTOM_OUTCOMES} outcomes of its own",
            )
        if session.scalar(select(TaskOutcome.id).where(TaskOutcome.key == key)) is not None:
            raise _taken(key)
        row = TaskOutcome(
            key=key,
            label=label,
            task_type=str(kind),
            ends_enrollment=bool(ends_enrollment),
            created_at=ctx.clock.now(),
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # the same key added at the same moment by someone else
            raise _taken(key) from None
        record(session, ctx, actor_id, "task_outcome.add", "task_outcome", row.id, {"key": key})
        return _view(row)


def update_outcome(
    ctx: Context,
    key: str,
    *,
    label: str | None = None,
    ends_enrollment: bool | None = None,
    actor_id: int | None = None,
) -> OutcomeDef:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TASK_OUTCOME, Action.UPDATE)
        row = _own(session, key, for_update=True)
        if label is not None:
            row.label = rules.check_label(label)
        if ends_enrollment is not None:
            row.ends_enrollment = bool(ends_enrollment)
        record(session, ctx, actor_id, "task_outcome.update", "task_outcome", row.id, {"key": key})
        return _view(row)


def remove_outcome(ctx: Context, key: str, *, actor_id: int | None = None) -> None:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TASK_OUTCOME, Action.DELETE)
        row = _own(session, key, for_update=True)
        record(session, ctx, actor_id, "task_outcome.remove", "task_outcome", row.id, {"key": key})
        session.delete(row)


def _own(session: Session, key: str, *, for_update: bool) -> TaskOutcome:
    query = select(TaskOutcome).where(TaskOutcome.key == key)
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        built_in = any(key in keys for keys in rules.BUILT_IN.values())
        raise CadenzaError(
            ErrorCode.INVALID_STATE if built_in else ErrorCode.NOT_FOUND,
            f"{key!r} is a built-in outcome: it cannot be changed"
            if built_in
            else f"outcome {key!r} does not exist",
            {"key": key},
        )
    return row


def _taken(key: str) -> CadenzaError:
    return CadenzaError(ErrorCode.CONFLICT, f"outcome {key!r} already exists", {"key": key})
