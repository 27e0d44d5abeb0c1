"""Analytics over HTTP: a sequence's outcomes and rates, per step and per day, and one
enrollment's timeline of events. Definitions are in docs/analytics.md."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cadenza.services.analytics import results as analytics
from cadenza.services.analytics.variants import VariantSplit
from cadenza.web.auth import ApiUser, Ctx
from cadenza.web.errors import error_responses
from cadenza.web.routes.enrollments import EnrollmentId
from cadenza.web.routes.sequences import SequenceId

router = APIRouter(tags=["analytics"])

MAX_DAYS = 366


class OutcomesOut(BaseModel):
    sent: int
    delivered: int
    bounced: int
    opened: int
    clicked: int
    replied: int
    meetings_booked: int
    rates: dict[str, float | None]


class VariantOutcomeOut(BaseModel):
    label: str
    subject: str | None
    sent: int
    delivered: int
    bounced: int
    opened: int
    clicked: int
    replied: int
    rates: dict[str, float | None]
    reply_rate_interval: tuple[float, float] | None = Field(
        description="95% Wilson interval of the reply rate"
    )


class VariantSplitOut(BaseModel):
    variants: list[VariantOutcomeOut]
    test: str | None = Field(description='"fisher" (2 variants) or "chi-square" (3 to 5)')
    p_value: float | None = Field(description="Of no difference in reply rates")
    winner_after: int | None
    winner: str | None
    decided_at: datetime | None


class StepOut(OutcomesOut):
    position: int
    type: str
    failed: int
    unknown: int
    tasks_completed: int
    tasks_open: int
    variants: VariantSplitOut | None = Field(None, description="A/B variants side by side")


class DayOut(BaseModel):
    day: date
    enrolled: int
    sent: int
    opened: int
    replied: int


class SequenceAnalyticsOut(BaseModel):
    enrolled: int
    active: int
    paused: int
    finished: int
    unenrolled: int
    unenrolled_by_reason: dict[str, int]
    contacts_emailed: int
    unsubscribed: int
    outcomes: OutcomesOut
    rates: dict[str, float | None]
    steps: list[StepOut]
    daily: list[DayOut]


class TimelineEventOut(BaseModel):
    at: datetime
    kind: str
    step_position: int | None
    detail: str | None
    flagged: str | None
    variant: str | None


def _outcomes(outcomes: analytics.Outcomes) -> dict:
    fields = ("sent", "delivered", "bounced", "opened", "clicked", "replied", "meetings_booked")
    return {**{f: getattr(outcomes, f) for f in fields}, "rates": outcomes.rates}


def _split(split: VariantSplit | None) -> dict | None:
    if split is None:
        return None
    return {
        **{k: v for k, v in vars(split).items() if k not in ("position", "variants")},
        "variants": [{**vars(v), "rates": v.rates} for v in split.variants],
    }


@router.get(
    "/sequences/{sequence_id}/analytics",
    response_model=SequenceAnalyticsOut,
    responses=error_responses(401, 404, 422),
)
def sequence_analytics(
    sequence_id: SequenceId,
    user: ApiUser,
    ctx: Ctx,
    days: int = Query(30, ge=1, le=MAX_DAYS, description="Days in the daily series, to today"),
) -> dict:
    """Everything a sequence achieved, with rates, per step and per UTC day."""
    report = analytics.sequence_report(ctx, sequence_id, actor_id=user.id)
    counts = report.counts
    today = ctx.clock.now().date()
    daily = analytics.daily_activity(ctx, sequence_id, days=days, today=today, actor_id=user.id)
    return {
        "enrolled": counts.enrolled,
        "active": counts.active,
        "paused": counts.paused,
        "finished": counts.finished,
        "unenrolled": counts.unenrolled,
        "unenrolled_by_reason": counts.unenrolled_by_reason,
        "contacts_emailed": report.contacts_emailed,
        "unsubscribed": report.unsubscribed,
        "outcomes": _outcomes(report.outcomes),
        "rates": report.rates,
        "steps": [
            {
                **_outcomes(outcomes),
                "position": step.position,
                "type": step.type,
                "failed": step.failed,
                "unknown": step.unknown,
                "tasks_completed": step.tasks_completed,
                "tasks_open": step.tasks_open,
                "variants": _split(report.variants.get(step.position)),
            }
            for step, outcomes in report.steps
        ],
        "daily": [vars(day) for day in daily],
    }


@router.get(
    "/enrollments/{enrollment_id}/events",
    response_model=list[TimelineEventOut],
    responses=error_responses(401, 404, 422),
)
def enrollment_events(
    enrollment_id: EnrollmentId,
    user: ApiUser,
    ctx: Ctx,
) -> list:
    """Oldest first: enrolled, each email sent, opens, clicks, replies, tasks, the end."""
    timeline = analytics.enrollment_timeline(ctx, enrollment_id, actor_id=user.id)
    return [vars(event) for event in timeline]
