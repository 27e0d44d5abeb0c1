"""Human opens and clicks per message, step or sequence (for analytics to build on).

An event counts when it is not flagged (domain/tracking.flag_for): scanner fetches and
fetches within the grace period after sending are kept but never counted here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, distinct, func, select

from cadenza.domain.enums import ENGAGEMENT_KINDS
from cadenza.services.context import Context
from cadenza.store.models import EmailEvent, Enrollment, Message, StepRun


@dataclass(frozen=True)
class Engagement:
    opened: int = 0  # messages with at least one human open
    clicked: int = 0  # messages with at least one human click
    opens: int = 0  # human open events
    clicks: int = 0  # human click events
    flagged_opens: int = 0  # recorded, not counted: scanners and too-soon fetches
    flagged_clicks: int = 0


def human_event() -> ColumnElement[bool]:
    """An open or click that counts: not flagged as a scanner's or too-soon fetch."""
    return EmailEvent.data["flagged"].as_string().is_(None)


def engagement(
    ctx: Context,
    *,
    message_id: int | None = None,
    sequence_id: int | None = None,
    step_position: int | None = None,
) -> Engagement:
    """For one message (its primary key), one sequence, or one step of a sequence."""
    if step_position is not None and sequence_id is None:
        raise ValueError("a step position needs its sequence")
    by_step = _counts(ctx, message_id, sequence_id, step_position)
    if step_position is not None:
        return by_step.get(step_position, Engagement())
    return _total(by_step)


def engagement_by_step(ctx: Context, sequence_id: int) -> dict[int, Engagement]:
    """Step position -> engagement, for the steps that have any events."""
    return _counts(ctx, None, sequence_id, None)


def engagement_by_variant(ctx: Context, sequence_id: int) -> dict[tuple[int, str], Engagement]:
    """(step position, A/B variant label) -> engagement, for variants with any events."""
    return _counts(ctx, None, sequence_id, None, by_variant=True)


def _total(by_step: dict[int | None, Engagement]) -> Engagement:
    fields = Engagement.__dataclass_fields__
    return Engagement(**{f: sum(getattr(e, f) for e in by_step.values()) for f in fields})


def _counts(ctx, message_id, sequence_id, step_position, *, by_variant: bool = False) -> dict:
    # Conditional aggregates rather than grouping by the flag: PostgreSQL would not
    # match a bound JSON path in GROUP BY with the same path in the select list.
    human = human_event()
    keys = (StepRun.step_position, StepRun.variant) if by_variant else (StepRun.step_position,)
    query = (
        select(
            *keys,
            EmailEvent.kind,
            func.count(case((human, 1))),
            func.count(distinct(case((human, EmailEvent.message_id)))),
            func.count(case((~human, 1))),
        )
        .join(Message, Message.id == EmailEvent.message_id)
        .outerjoin(StepRun, StepRun.id == Message.step_run_id)
        .where(EmailEvent.kind.in_(ENGAGEMENT_KINDS))
        .group_by(*keys, EmailEvent.kind)
    )
    if by_variant:
        query = query.where(StepRun.variant.is_not(None))
    if message_id is not None:
        query = query.where(EmailEvent.message_id == message_id)
    if sequence_id is not None:
        query = query.join(Enrollment, Enrollment.id == Message.enrollment_id).where(
            Enrollment.sequence_id == sequence_id
        )
    if step_position is not None:
        query = query.where(StepRun.step_position == step_position)
    tallies: dict = {}
    with ctx.db.read() as session:
        for *key, kind, events, messages, flagged in session.execute(query):
            tallies.setdefault(tuple(key) if by_variant else key[0], {}).update(
                {f"{kind}s": events, f"{kind}ed": messages, f"flagged_{kind}s": flagged}
            )
    return {position: Engagement(**tally) for position, tally in tallies.items()}
