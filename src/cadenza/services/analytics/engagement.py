"""Human opens and clicks per message, step or sequence (for analytics to build on).

An event counts when it is not flagged (domain/tracking.flag_for): scanner fetches and
fetches within the grace period after sending are kept but never counted here. A
sequence's are read from its counters (services/counters), a message's from its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, select

from cadenza.domain.counters import engagement_keys
from cadenza.domain.enums import ENGAGEMENT_KINDS
from cadenza.services.context import Context
from cadenza.services.counters.figures import sequence_figures
from cadenza.store.models import EmailEvent


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
    if message_id is not None:
        if sequence_id is not None:
            raise ValueError("a message or a sequence, not both")
        return _of_message(ctx, message_id)
    by_step = engagement_by_step(ctx, sequence_id) if sequence_id is not None else {}
    if step_position is not None:
        return by_step.get(step_position, Engagement())
    return _total(by_step)


def engagement_by_step(ctx: Context, sequence_id: int) -> dict[int | None, Engagement]:
    """Step position -> engagement, for the steps that have any events (None: emails on
    no step). From the sequence's counters (services/counters)."""
    figures = sequence_figures(ctx, sequence_id)
    found: dict[int | None, dict[str, int]] = {}
    for name in FIELDS:
        for position, n in figures.positions(name).items():
            found.setdefault(position or None, {})[name] = n
    return {position: Engagement(**tally) for position, tally in found.items()}


def engagement_by_variant(ctx: Context, sequence_id: int) -> dict[tuple[int, str], Engagement]:
    """(step position, A/B variant label) -> engagement, for variants with any events."""
    figures = sequence_figures(ctx, sequence_id)
    found: dict[tuple[int, str], dict[str, int]] = {}
    for name in FIELDS:
        for key, n in figures.variants(name).items():
            found.setdefault(key, {})[name] = n
    return {key: Engagement(**tally) for key, tally in found.items()}


FIELDS = tuple(Engagement.__dataclass_fields__)


def _total(by_step: dict[int | None, Engagement]) -> Engagement:
    return Engagement(**{f: sum(getattr(e, f) for e in by_step.values()) for f in FIELDS})


def _of_message(ctx: Context, message_id: int) -> Engagement:
    """One message's events: a few rows, counted as they are."""
    human = human_event()
    query = (
        select(
            EmailEvent.kind,
            func.count(case((human, 1))),
            func.count(case((~human, 1))),
        )
        .where(EmailEvent.message_id == message_id, EmailEvent.kind.in_(ENGAGEMENT_KINDS))
        .group_by(EmailEvent.kind)
    )
    tally: dict[str, int] = {}
    with ctx.db.read() as session:
        for kind, events, flagged in session.execute(query):
            opened, _, _ = engagement_keys(kind)
            tally.update({opened: events, f"{kind}ed": min(events, 1), f"flagged_{kind}s": flagged})
    return Engagement(**tally)
