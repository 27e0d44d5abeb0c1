"""Enrollments: enroll contacts in a sequence, list and read them, pause, resume, unenroll.

Every time of an enrollment leaves with the enrollment's own UTC offset
("2026-03-05T04:00:00-05:00"), never as "Z": the rep reads "4 am their time" straight
from the string, and a client need not know the zone rules to show it.

Members act on the enrollments they made and are told "not found" for anyone else's,
so enrollment ids of colleagues cannot be probed; admins act on all, viewers read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, create_model

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    EnrollmentState,
    EnrollWarningCode,
    PauseReason,
    StepRunStatus,
    StepWaitReason,
    TimelineMark,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.users import UserView
from cadenza.services.context import Context
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.enrollment.enroll import (
    ContactRequest,
    ContactResult,
    EnrollOptions,
    EnrollWarning,
    enroll,
)
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged
from cadenza.web.routes.sequences import SettingsIn

router = APIRouter(tags=["enrollments"])

BULK_ACTION_LIMIT = 500
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
EnrollmentId = Annotated[int, Path(ge=1, le=MAX_ID)]

# pydantic writes a UTC time as "Z"; isoformat keeps "+00:00" like every other offset.
LocalTime = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO-8601 with the enrollment's UTC offset",
        }
    ),
]


class StepEditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(None, pattern=NO_NUL)
    body: str | None = Field(None, pattern=NO_NUL)
    task_title: str | None = Field(None, pattern=NO_NUL)
    task_notes: str | None = Field(None, pattern=NO_NUL)
    variant: str | None = Field(
        None,
        pattern="^[A-E]$",
        description="On a step with A/B variants: the one this contact gets",
    )


class EnrollContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: RowId
    token_values: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description='Values for tokens, e.g. {"contact.firstname": "Sam"} or {"firstname": "Sam"}',
    )
    step_edits: dict[str, StepEditIn] = Field(
        default_factory=dict, description='This contact\'s edits by step position: {"2": {...}}'
    )


def _optional(
    model: type[BaseModel], name: str, exclude: frozenset[str] = frozenset()
) -> type[BaseModel]:
    """`model` with every field optional and unset by default: an override of some."""
    fields = {
        field: (info.annotation | None, Field(None, description=info.description))
        for field, info in model.model_fields.items()
        if field not in exclude
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


# A sequence's settings (`SettingsIn`, the one definition) as overrides for some
# enrollments: what is left out stays the sequence's. The enrollment rules are the
# sequence's alone (an enrollment sets them aside per contact with `override_rules`).
EnrollSettingsIn = _optional(SettingsIn, "EnrollSettingsIn", frozenset({"enrollment_rules"}))


class EnrollOptionsIn(BaseModel):
    """The choices every contact of one enrollment shares: the enroll dialog's, the
    CLI's (`cadenza enroll`, `cadenza lists enroll`) and a list job's, read into the
    service's `EnrollOptions`."""

    model_config = ConfigDict(extra="forbid")

    mailbox_id: RowId | None = Field(None, description="One of yours; omitted: your only mailbox")
    start_step: int = Field(1, description="1-based; earlier steps are skipped")
    timezone: str | None = Field(
        None,
        max_length=64,
        pattern=NO_NUL,
        description="IANA zone for every contact; else each contact's, else yours",
    )
    send_at: datetime | None = Field(
        None,
        description="When the first step goes out. With an offset: that instant. Without: "
        "that wall-clock time in each contact's own zone",
    )
    settings: EnrollSettingsIn | None = Field(  # type: ignore[valid-type]
        None,
        description="Follow-up settings for these enrollments only, over the sequence's "
        "(the same names as a sequence's settings; those left out stay the sequence's)",
    )
    token_values: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        max_length=100,
        description="Values for everyone, used where a contact has none of its own "
        '(e.g. {"firstname": "there"}); a contact\'s own token_values win',
    )

    def options(self) -> EnrollOptions:
        return EnrollOptions(
            mailbox_id=self.mailbox_id,
            start_step=self.start_step,
            timezone=self.timezone,
            send_at=self.send_at,
            settings=self.settings.model_dump(exclude_unset=True) if self.settings else None,
            token_values=dict(self.token_values),
        )


class EnrollIn(EnrollOptionsIn):
    contacts: list[EnrollContactIn] = Field(
        default_factory=list,
        description="At most 50 (CADENZA_ENROLL_BULK_LIMIT). From a record: which of its "
        "associated contacts (may be left out when it has exactly one)",
    )
    record_type: str | None = Field(
        None,
        max_length=64,
        pattern=NO_NUL,
        description='Enrolling from a record: "contact", "company", "deal", "ticket" or a '
        "custom object type; the enrollment remembers it",
    )
    record_id: RowId | None = None
    dry_run: bool = Field(False, description="Validate and project the schedule; write nothing")
    override_rules: list[RowId] = Field(
        default_factory=list,
        max_length=500,
        description="Contacts (of `contacts`) to enroll although an enrollment rule refuses "
        "them (in_another_sequence, enrolled_before, contacted_recently): admins and users "
        "with *can override enrollment rules* only (else 403 override_not_allowed); each "
        "override is written to the audit log",
    )


class ScheduledStepOut(BaseModel):
    step: int
    due_at: LocalTime


class EnrollWarningOut(BaseModel):
    code: EnrollWarningCode
    message: str


class EnrollResultOut(BaseModel):
    contact_id: int
    ok: bool
    enrollment_id: int | None
    code: str | None
    message: str | None
    missing_tokens: list[str]
    timezone: str | None
    schedule: list[ScheduledStepOut]
    warnings: list[EnrollWarningOut] = Field(
        description="What the enrollment goes ahead with but you should know, e.g. "
        "`replies_not_detected`: the mailbox's inbox is not read, so a reply does not stop it"
    )
    overridable: bool = Field(
        False,
        description="Refused by an enrollment rule, which `override_rules` may set aside",
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="About the refusal: the other sequence (sequence_id, sequence_name) or "
        "the last email (last_emailed_at, eligible_from)",
    )


class EnrollOut(BaseModel):
    results: list[EnrollResultOut]


class StepLineOut(BaseModel):
    position: int
    type: str
    title: str
    status: StepRunStatus | TimelineMark = Field(
        ..., description='A step run status, or "projected" for the future'
    )
    due_at: LocalTime | None
    completed_at: LocalTime | None
    wait_reason: StepWaitReason | None
    last_error: str | None


class EnrollmentSummaryOut(BaseModel):
    id: int
    contact_id: int
    sequence_id: int
    mailbox_id: int
    enrolled_by_id: int
    state: EnrollmentState
    reason: UnenrollReason | None
    reason_detail: str | None
    cause_event_id: int | None = Field(
        description="The email_events row (reply, bounce, meeting…) that ended or paused it"
    )
    resume_at: LocalTime | None = Field(description="When an out-of-office pause ends by itself")
    paused_at: LocalTime | None = Field(None, description="When it was paused, while paused")
    pause_reason: PauseReason | None = Field(
        None,
        description="While paused: out_of_office (resumes by itself at resume_at) or manual "
        "(paused by a person; waits until someone resumes it)",
    )
    timezone: str
    needs_attention: bool
    enrolled_at: LocalTime
    ended_at: LocalTime | None
    source_record_id: int | None = Field(None, description="The record it was enrolled from")


class StepProblemOut(BaseModel):
    position: int
    type: str
    title: str
    status: Literal[StepRunStatus.FAILED, StepRunStatus.UNKNOWN]
    explanation: str = Field(description="What happened, in plain words")
    server_reply: str | None = Field(description="The mail server's last answer, if any")
    at: LocalTime | None
    attempts: int


class EnrollmentOut(EnrollmentSummaryOut):
    steps: list[StepLineOut]
    problems: list[StepProblemOut] = Field(
        default_factory=list, description="Failed or unknown steps, explained"
    )


class EnrollmentPage(BaseModel):
    results: list[EnrollmentSummaryOut]
    next_cursor: str | None


# The values, not the members: a refused reason is then reported as before.
_UNENROLL_REASONS = tuple(r.value for r in enrollment_control.UNENROLL_REASONS)


class UnenrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal[_UNENROLL_REASONS] = UnenrollReason.MANUAL.value
    detail: str | None = Field(None, max_length=2000, pattern=NO_NUL)


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrollment_ids: list[RowId] = Field(..., description=f"At most {BULK_ACTION_LIMIT}")


class BulkUnenrollIn(BulkIn, UnenrollIn):
    pass


class BulkResultOut(BaseModel):
    enrollment_id: int
    ok: bool
    code: str | None
    message: str | None


class BulkOut(BaseModel):
    results: list[BulkResultOut]


# --- output -------------------------------------------------------------------------


def _summary(enrollment: enrollment_views.EnrollmentSummary) -> dict[str, Any]:
    tz = parse_timezone(enrollment.timezone)
    return {
        "id": enrollment.id,
        "contact_id": enrollment.contact_id,
        "sequence_id": enrollment.sequence_id,
        "mailbox_id": enrollment.mailbox_id,
        "enrolled_by_id": enrollment.enrolled_by_id,
        "state": enrollment.state,
        "reason": enrollment.reason,
        "reason_detail": enrollment.reason_detail,
        "cause_event_id": enrollment.cause_event_id,
        "resume_at": enrollment.resume_at.astimezone(tz) if enrollment.resume_at else None,
        "paused_at": enrollment.paused_at.astimezone(tz) if enrollment.paused_at else None,
        "pause_reason": enrollment_views.pause_reason(enrollment),
        "timezone": enrollment.timezone,
        "needs_attention": enrollment.needs_attention,
        "enrolled_at": enrollment.enrolled_at.astimezone(tz),
        "ended_at": enrollment.ended_at.astimezone(tz) if enrollment.ended_at else None,
        "source_record_id": enrollment.source_record_id,
    }


def enrollment_out(view: enrollment_views.EnrollmentView) -> EnrollmentOut:
    tz = parse_timezone(view.enrollment.timezone)
    return EnrollmentOut(
        **_summary(view.enrollment),
        steps=[
            StepLineOut(
                position=line.position,
                type=line.type,
                title=line.title,
                status=line.status,
                due_at=line.due_at.astimezone(tz) if line.due_at else None,
                completed_at=line.completed_at.astimezone(tz) if line.completed_at else None,
                wait_reason=line.wait_reason,
                last_error=line.last_error,
            )
            for line in view.steps
        ],
        problems=[
            StepProblemOut(
                position=p.position,
                type=p.type,
                title=p.title,
                status=p.status,
                explanation=p.explanation,
                server_reply=p.server_reply,
                at=p.at.astimezone(tz) if p.at else None,
                attempts=p.attempts,
            )
            for p in view.problems
        ],
    )


def _result_out(
    result: ContactResult,
    steps: dict[tuple[int, datetime, tzinfo | None], ScheduledStepOut],
    warnings: dict[EnrollWarning, EnrollWarningOut],
) -> EnrollResultOut:
    """A contact's result. The contacts of a zone and first due time share one projected
    schedule, and all of them the request's warnings: each distinct step and warning
    becomes one response object, kept in `steps` and `warnings` for the request's other
    contacts (50 contacts made 150 step objects of three: bench/api.py). A step is the
    same by its time zone too: contacts of two zones sent at once share the instant, not
    the local time the response shows."""
    keys = [(step.step, step.due_at, step.due_at.tzinfo) for step in result.schedule]
    for key, step in zip(keys, result.schedule, strict=True):
        if key not in steps:
            steps[key] = ScheduledStepOut(step=step.step, due_at=step.due_at)
    for warning in result.warnings:
        if warning not in warnings:
            warnings[warning] = EnrollWarningOut(code=warning.code, message=warning.message)
    return EnrollResultOut(
        contact_id=result.contact_id,
        ok=result.ok,
        enrollment_id=result.enrollment_id,
        code=result.code,
        message=result.message,
        missing_tokens=result.missing_tokens,
        timezone=result.timezone,
        schedule=[steps[key] for key in keys],
        warnings=[warnings[w] for w in result.warnings],
        overridable=result.overridable,
        details=result.details,
    )


# --- who may see and act ------------------------------------------------------------


def visible_enrollment(
    ctx: Context, user: UserView, enrollment_id: int
) -> enrollment_views.EnrollmentView:
    return enrollment_views.get_enrollment(ctx, enrollment_id, actor_id=user.id)


def guarded(action: Callable[..., object], user: UserView) -> Callable[..., object]:
    """The action as `user`: the service applies the policy (someone else's is "not found")."""

    def run(ctx: Context, enrollment_id: int, **kwargs: Any) -> object:
        return action(ctx, enrollment_id, actor_id=user.id, **kwargs)

    return run


def _bulk(ctx: Context, user: UserView, action, body: BulkIn, **kwargs: Any) -> BulkOut:
    if len(body.enrollment_ids) > BULK_ACTION_LIMIT:
        raise CadenzaError(
            ErrorCode.BULK_LIMIT_EXCEEDED,
            f"at most {BULK_ACTION_LIMIT} enrollments at once; got {len(body.enrollment_ids)}",
            {"limit": BULK_ACTION_LIMIT, "requested": len(body.enrollment_ids)},
        )
    outcomes = enrollment_control.for_many(
        guarded(action, user), ctx, body.enrollment_ids, **kwargs
    )
    return BulkOut(
        results=[
            BulkResultOut(enrollment_id=o.enrollment_id, ok=o.ok, code=o.code, message=o.message)
            for o in outcomes
        ]
    )


# --- routes -------------------------------------------------------------------------


@router.post(
    "/sequences/{sequence_id}/enrollments",
    response_model=EnrollOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def enroll_contacts(
    body: EnrollIn,
    user: ApiWriter,
    ctx: Ctx,
    sequence_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> EnrollOut:
    """200 with a result per contact: some may enroll while others are refused."""
    contacts = [
        ContactRequest(
            contact_id=c.contact_id,
            token_values=dict(c.token_values),
            step_edits={
                key: edits.model_dump(exclude_unset=True) for key, edits in c.step_edits.items()
            },
        )
        for c in body.contacts
    ]
    request = body.options().request(
        sequence_id,
        user.id,
        contacts,
        dry_run=body.dry_run,
        record_type=body.record_type,
        record_id=body.record_id,
        override_rules=list(body.override_rules),
    )
    steps: dict[tuple[int, datetime, tzinfo | None], ScheduledStepOut] = {}
    warnings: dict[EnrollWarning, EnrollWarningOut] = {}
    return EnrollOut(results=[_result_out(r, steps, warnings) for r in enroll(ctx, request)])


@router.get("/enrollments", response_model=EnrollmentPage, responses=error_responses(401, 422))
def list_enrollments(
    user: ApiUser,
    ctx: Ctx,
    sequence_id: int | None = Query(None, ge=1, le=MAX_ID),
    contact_id: int | None = Query(None, ge=1, le=MAX_ID),
    state: str | None = Query(None, description="active, paused, finished or unenrolled"),
    q: str | None = Query(
        None, max_length=200, description="Contact email or name, or sequence name, contains"
    ),
    order: Literal["oldest", "newest"] = Query(
        "oldest", description="By id; the cursor pages on in the same order"
    ),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    found = enrollment_views.list_enrollments(
        ctx,
        sequence_id=sequence_id,
        contact_id=contact_id,
        state=state,
        actor_id=user.id,
        limit=limit + 1,
        after_id=after_id(cursor),
        query=q,
        newest_first=order == "newest",
    )
    return paged(found, limit, _summary)


@router.get(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    responses=error_responses(401, 404, 422),
)
def get_enrollment(
    enrollment_id: EnrollmentId,
    user: ApiUser,
    ctx: Ctx,
) -> EnrollmentOut:
    return enrollment_out(visible_enrollment(ctx, user, enrollment_id))


@router.post("/enrollments/pause", response_model=BulkOut, responses=error_responses(401, 403, 422))
def pause_many(
    body: BulkIn,
    user: ApiWriter,
    ctx: Ctx,
) -> BulkOut:
    return _bulk(ctx, user, enrollment_control.pause, body)


@router.post(
    "/enrollments/resume", response_model=BulkOut, responses=error_responses(401, 403, 422)
)
def resume_many(
    body: BulkIn,
    user: ApiWriter,
    ctx: Ctx,
) -> BulkOut:
    return _bulk(ctx, user, enrollment_control.resume, body)


@router.post(
    "/enrollments/unenroll", response_model=BulkOut, responses=error_responses(401, 403, 422)
)
def unenroll_many(
    body: BulkUnenrollIn,
    user: ApiWriter,
    ctx: Ctx,
) -> BulkOut:
    return _bulk(
        ctx, user, enrollment_control.unenroll, body, reason=body.reason, detail=body.detail
    )


@router.post(
    "/enrollments/{enrollment_id}/pause",
    response_model=EnrollmentOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def pause(
    enrollment_id: EnrollmentId,
    user: ApiWriter,
    ctx: Ctx,
) -> EnrollmentOut:
    guarded(enrollment_control.pause, user)(ctx, enrollment_id)
    return enrollment_out(enrollment_views.get_enrollment(ctx, enrollment_id))


@router.post(
    "/enrollments/{enrollment_id}/resume",
    response_model=EnrollmentOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def resume(
    enrollment_id: EnrollmentId,
    user: ApiWriter,
    ctx: Ctx,
) -> EnrollmentOut:
    guarded(enrollment_control.resume, user)(ctx, enrollment_id)
    return enrollment_out(enrollment_views.get_enrollment(ctx, enrollment_id))


@router.post(
    "/enrollments/{enrollment_id}/unenroll",
    response_model=EnrollmentOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def unenroll(
    enrollment_id: EnrollmentId,
    user: ApiWriter,
    ctx: Ctx,
    body: UnenrollIn | None = None,
) -> EnrollmentOut:
    body = body or UnenrollIn()
    guarded(enrollment_control.unenroll, user)(
        ctx, enrollment_id, reason=body.reason, detail=body.detail
    )
    return enrollment_out(enrollment_views.get_enrollment(ctx, enrollment_id))
