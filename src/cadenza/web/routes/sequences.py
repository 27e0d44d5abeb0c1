"""Sequences: create, list, read, replace, archive, and their delivery statistics; their
folders, sharing, clones and sequence templates (docs/content.md).

The pydantic models describe the JSON shape for clients and /openapi.json; the
services still validate everything (templates, threading, holiday countries), so the
CLI and the API refuse exactly the same sequences.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from cadenza.domain.enums import (
    Exclusivity,
    FollowUpDays,
    Reenrollment,
    Sharing,
    StepType,
    TaskPriority,
    TaskType,
    UnenrollOnReply,
)
from cadenza.domain.folders import MAX_FOLDER_LENGTH, folder_name
from cadenza.domain.sequence_settings import MAX_MIN_DAYS_SINCE_EMAILED, SequenceSettings
from cadenza.services.analytics import stats
from cadenza.services.sequences import catalog as sequences
from cadenza.services.sequences import playbooks
from cadenza.services.sequences.catalog import SequenceView
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged

router = APIRouter(tags=["sequences"])

SequenceId = Annotated[int, Path(ge=1, le=MAX_ID)]


class SendWindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(..., description="Local time HH:MM", examples=["08:00"])
    end: str = Field(..., description="Local time HH:MM, after start", examples=["18:00"])


class EnrollmentRulesIn(BaseModel):
    """Who may enter the sequence (docs/enrollment.md, "Enrollment rules"); null or left
    out: the installation's default (CADENZA_ENROLLMENT_*)."""

    model_config = ConfigDict(extra="forbid")

    exclusivity: Exclusivity | None = Field(
        None,
        description="none; exclusive: not while live in another exclusive sequence; "
        "any: not while live in any other sequence",
    )
    reenrollment: Reenrollment | None = Field(
        None,
        description="once (never again); when_not_live (once the last one ended); any_time "
        "(even while live: the live enrollment ends and a new one starts)",
    )
    min_days_since_emailed: StrictInt | None = Field(
        None,
        ge=0,
        le=MAX_MIN_DAYS_SINCE_EMAILED,
        description="Refuse a contact emailed by any sequence fewer days ago (0: off)",
    )


class EnrollmentRulesOut(BaseModel):
    exclusivity: Exclusivity | None
    reenrollment: Reenrollment | None
    min_days_since_emailed: int | None


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    follow_up_days: FollowUpDays = FollowUpDays.EVERY_DAY
    holiday_country: str | None = Field(
        None, max_length=10, description="ISO 3166 code; needed by business_days", examples=["US"]
    )
    send_window: SendWindowIn | str | None = Field(
        None, description='Hours follow-ups may go out, or null: {"start", "end"} or "HH:MM-HH:MM"'
    )
    thread_follow_ups: bool = True
    unenroll_on_reply: UnenrollOnReply = UnenrollOnReply.CONTACT
    unenroll_on_meeting: bool = True
    task_reminders: bool = False
    track_opens: bool = Field(False, description="Add an open-tracking pixel to emails")
    track_clicks: bool = Field(False, description="Send links through signed click redirects")
    auto_reply_pause_days: StrictInt = Field(
        7, ge=1, le=90, description="Out-of-office pause when no return date can be read"
    )
    unenroll_on_outcomes: list[str] | None = Field(
        None,
        max_length=50,
        description="Task outcomes that unenroll the contact when logged; "
        "null: the team's ending outcomes (meeting_booked, not_interested, custom ending ones)",
    )

    enrollment_rules: EnrollmentRulesIn = Field(
        default_factory=EnrollmentRulesIn,
        description="The sequence's own enrollment rules; not an enrollment's to change",
    )


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(
        None, pattern="^[A-E]$", description="A, B, C... in order; optional (taken from order)"
    )
    subject: str | None = Field(None, pattern=NO_NUL, description="Template; null: the step's")
    body: str | None = Field(None, pattern=NO_NUL, description="HTML template; null: the step's")


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StepType
    delay_days: int = Field(0, ge=0, le=365, description="Wait after the previous step")
    delay_hours: int = Field(0, ge=0, le=23)
    subject: str | None = Field(
        None, pattern=NO_NUL, description="Template; optional with thread_with_step"
    )
    body: str | None = Field(
        None, pattern=NO_NUL, description="HTML template, sanitised when saved"
    )
    thread_with_step: int | None = Field(
        None, description="Position of an earlier email step to reply in the thread of"
    )
    task_type: TaskType | None = None
    task_title: str | None = Field(None, pattern=NO_NUL)
    task_notes: str | None = Field(None, pattern=NO_NUL)
    task_priority: TaskPriority | None = None
    continue_without_completing: bool = False
    variants: list[VariantIn] | None = Field(
        None, description="A/B variants of an email step: 2 to 5 (docs/content.md)"
    )
    winner_after: int | None = Field(
        None, description="After this many sends of every variant, the best reply rate wins"
    )
    template_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="Use this library template by reference: its subject and body are "
        "taken (and kept current) from the template; omit to type them or copy them",
    )


class SequenceIn(BaseModel):
    """The whole sequence: a PUT replaces settings and the full step list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200, pattern=NO_NUL)
    settings: SettingsIn = Field(default_factory=SettingsIn)
    steps: list[StepIn] = Field(default_factory=list, description="In order; positions from 1")


class NewSequenceIn(SequenceIn):
    """A new sequence: also where it goes and who shares it (folder and sharing are left
    as they are by a PUT; PATCH changes them)."""

    folder: str | None = Field(None, max_length=MAX_FOLDER_LENGTH, description="Folder name")
    sharing: Sharing = Field(Sharing.TEAM_USE, description="Who else may use or edit it")


class PlacementIn(BaseModel):
    """What a PATCH changes: only the fields sent. `folder: null` takes it out of its
    folder; `is_template: true` offers it to the team (a private one becomes team_use)."""

    model_config = ConfigDict(extra="forbid")

    folder: str | None = Field(None, max_length=MAX_FOLDER_LENGTH)
    sharing: Sharing | None = None
    is_template: bool | None = None


class CloneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, min_length=1, max_length=200, pattern=NO_NUL, description='Default "Copy of …"'
    )
    folder: str | None = Field(
        None, max_length=MAX_FOLDER_LENGTH, description="Default: the source's folder"
    )


class FolderOut(BaseModel):
    name: str
    sequences: int


class FolderRenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=MAX_FOLDER_LENGTH)


class FolderRenamedOut(BaseModel):
    name: str
    renamed: int


class SendWindowOut(BaseModel):
    start: str
    end: str


class SettingsOut(BaseModel):
    follow_up_days: str
    holiday_country: str | None
    send_window: SendWindowOut | None
    thread_follow_ups: bool
    unenroll_on_reply: str
    unenroll_on_meeting: bool
    task_reminders: bool
    track_opens: bool
    track_clicks: bool
    auto_reply_pause_days: int
    unenroll_on_outcomes: list[str] | None = None

    enrollment_rules: EnrollmentRulesOut = Field(
        description="The sequence's own rules; null: the installation's default"
    )


class VariantOut(BaseModel):
    label: str
    subject: str | None
    body: str | None


class StepOut(BaseModel):
    position: int
    type: str
    delay_days: int
    delay_hours: int
    subject: str | None
    body: str | None
    thread_with_step: int | None
    task_type: str | None
    task_title: str | None
    task_notes: str | None
    task_priority: str | None
    continue_without_completing: bool
    variants: list[VariantOut] | None
    winner_after: int | None
    template_id: int | None = Field(None, description="The template used by reference")


class SequenceOut(BaseModel):
    id: int
    owner_id: int
    name: str
    settings: SettingsOut
    steps: list[StepOut]
    archived: bool = Field(description="Archived: nobody new can be enrolled; unarchive to reuse")
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    folder: str | None
    sharing: str = Field(description="private, team_use (others enroll) or team_edit")
    is_template: bool = Field(description="Offered under Sequence templates to clone")


class SequencePage(BaseModel):
    results: list[SequenceOut]
    next_cursor: str | None


class UnenrolledOut(BaseModel):
    total: int
    by_reason: dict[str, int]


class StepStatsOut(BaseModel):
    position: int
    type: str
    sent: int
    failed: int
    unknown: int
    tasks_completed: int
    tasks_open: int


class SequenceStatsOut(BaseModel):
    enrolled: int
    active: int
    paused: int
    finished: int
    unenrolled: UnenrolledOut
    sent: int
    failed: int
    unknown: int
    steps: list[StepStatsOut]


def sequence_out(sequence: SequenceView) -> SequenceOut:
    return SequenceOut(
        id=sequence.id,
        owner_id=sequence.owner_id,
        name=sequence.name,
        settings=SettingsOut(**SequenceSettings.from_dict(sequence.settings).to_dict()),
        steps=[
            StepOut(
                position=s.position,
                type=s.type,
                delay_days=s.delay_days,
                delay_hours=s.delay_hours,
                subject=s.subject,
                body=s.body,
                thread_with_step=s.thread_with_step,
                task_type=s.task_type,
                task_title=s.task_title,
                task_notes=s.task_notes,
                task_priority=s.task_priority,
                continue_without_completing=s.continue_without_completing,
                variants=[VariantOut(**v) for v in s.variants] if s.variants else None,
                winner_after=s.winner_after,
                template_id=s.template_id,
            )
            for s in sequence.steps
        ],
        archived=sequence.archived_at is not None,
        archived_at=sequence.archived_at,
        created_at=sequence.created_at,
        updated_at=sequence.updated_at,
        folder=sequence.folder,
        sharing=sequence.sharing,
        is_template=sequence.is_template,
    )


def _data(body: SequenceIn) -> dict[str, Any]:
    """Only what the client sent, so the service's defaults stay the single source."""
    return {
        "name": body.name,
        "settings": body.settings.model_dump(exclude_unset=True),
        "steps": [step.model_dump(exclude_unset=True) for step in body.steps],
    }


@router.post(
    "/sequences",
    status_code=201,
    response_model=SequenceOut,
    responses=error_responses(401, 403, 404, 422),  # 404: a step's template_id
)
def create_sequence(
    body: NewSequenceIn,
    user: ApiWriter,
    ctx: Ctx,
) -> SequenceOut:
    data = _data(body)
    return sequence_out(
        sequences.create_sequence(
            ctx,
            user.id,
            data["name"],
            settings=data["settings"],
            steps=data["steps"],
            folder=body.folder,
            sharing=body.sharing,
        )
    )


@router.get("/sequences", response_model=SequencePage, responses=error_responses(401, 422))
def list_sequences(
    user: ApiUser,
    ctx: Ctx,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
    archived: bool = Query(False, description="List the archived sequences instead"),
    folder: str | None = Query(
        None, max_length=MAX_FOLDER_LENGTH, description="Only the sequences in this folder"
    ),
    shared: Sharing | None = Query(None, description="Only the sequences shared this way"),
    templates: bool | None = Query(None, description="Only sequence templates (or only not)"),
) -> dict[str, Any]:
    """The sequences the caller may see: their own, those shared with the team, and for
    an admin every one."""
    found = sequences.list_sequences(
        ctx, limit=limit + 1, after_id=after_id(cursor), archived=archived, actor_id=user.id,
        folder=folder, sharing=shared, templates=templates,
    )  # fmt: skip
    return paged(found, limit, sequence_out)


@router.get(
    "/sequence-folders", response_model=list[FolderOut], responses=error_responses(401, 422)
)
def list_folders(
    user: ApiUser,
    ctx: Ctx,
    archived: bool = Query(False, description="Folders of the archived sequences"),
) -> list[FolderOut]:
    """The folders holding sequences the caller sees, with how many."""
    return [
        FolderOut(name=f.name, sequences=f.sequences)
        for f in playbooks.list_folders(ctx, actor_id=user.id, archived=archived)
    ]


@router.patch(
    "/sequence-folders/{folder}",
    response_model=FolderRenamedOut,
    responses=error_responses(401, 403, 404, 422),
)
def rename_folder(
    body: FolderRenameIn,
    user: ApiWriter,
    ctx: Ctx,
    folder: str = Path(max_length=MAX_FOLDER_LENGTH),
) -> FolderRenamedOut:
    """Renames the folder on every sequence in it, when the caller may edit each."""
    renamed = playbooks.rename_folder(ctx, folder, body.name, actor_id=user.id)
    return FolderRenamedOut(name=folder_name(body.name) or "", renamed=renamed)


@router.get(
    "/sequences/{sequence_id}",
    response_model=SequenceOut,
    responses=error_responses(401, 404, 422),
)
def get_sequence(
    sequence_id: SequenceId,
    user: ApiUser,
    ctx: Ctx,
) -> SequenceOut:
    return sequence_out(sequences.get_sequence(ctx, sequence_id, actor_id=user.id))


@router.patch(
    "/sequences/{sequence_id}",
    response_model=SequenceOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_placement(
    body: PlacementIn,
    sequence_id: SequenceId,
    user: ApiWriter,
    ctx: Ctx,
) -> SequenceOut:
    """Moves it to a folder (editors), or changes its sharing or template flag (its
    owner and admins). Fields not sent are left as they are."""
    sent = body.model_dump(exclude_unset=True)
    for key in ("sharing", "is_template"):
        if key in sent and sent[key] is None:
            sent.pop(key)  # null: leave it
    return sequence_out(playbooks.update_placement(ctx, sequence_id, actor_id=user.id, **sent))


@router.post(
    "/sequences/{sequence_id}/clone",
    status_code=201,
    response_model=SequenceOut,
    responses=error_responses(401, 403, 404, 422),
)
def clone_sequence(
    sequence_id: SequenceId,
    user: ApiWriter,
    ctx: Ctx,
    body: CloneIn | None = None,
) -> SequenceOut:
    """A private copy of the caller's: steps, settings and folder; "save as template"
    and "create from a template" are a PATCH and this."""
    sent = body.model_dump(exclude_unset=True) if body else {}
    return sequence_out(playbooks.clone_sequence(ctx, sequence_id, user.id, **sent))


@router.put(
    "/sequences/{sequence_id}",
    response_model=SequenceOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def replace_sequence(
    body: SequenceIn,
    sequence_id: SequenceId,
    user: ApiWriter,
    ctx: Ctx,
) -> SequenceOut:
    data = _data(body)
    return sequence_out(
        sequences.replace_sequence(
            ctx,
            sequence_id,
            name=data["name"],
            settings=data["settings"],
            steps=data["steps"],
            actor_id=user.id,
        )
    )


@router.delete(
    "/sequences/{sequence_id}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422),
)
def archive_sequence(
    sequence_id: SequenceId,
    user: ApiWriter,
    ctx: Ctx,
) -> None:
    """Archives: enrollments in flight keep running from their snapshots."""
    sequences.archive_sequence(ctx, sequence_id, actor_id=user.id)


@router.post(
    "/sequences/{sequence_id}/unarchive",
    response_model=SequenceOut,
    responses=error_responses(401, 403, 404, 422),
)
def unarchive_sequence(sequence_id: SequenceId, user: ApiWriter, ctx: Ctx) -> SequenceOut:
    """Back in the list and open to enrollment; unarchiving a live sequence changes nothing."""
    return sequence_out(sequences.unarchive_sequence(ctx, sequence_id, actor_id=user.id))


@router.get(
    "/sequences/{sequence_id}/stats",
    response_model=SequenceStatsOut,
    responses=error_responses(401, 404, 422),
)
def sequence_stats(
    sequence_id: SequenceId,
    user: ApiUser,
    ctx: Ctx,
) -> SequenceStatsOut:
    found = stats.sequence_stats(ctx, sequence_id, actor_id=user.id)
    return SequenceStatsOut(
        enrolled=found.enrolled,
        active=found.active,
        paused=found.paused,
        finished=found.finished,
        unenrolled=UnenrolledOut(total=found.unenrolled, by_reason=found.unenrolled_by_reason),
        sent=found.sent,
        failed=found.failed,
        unknown=found.unknown,
        steps=[
            StepStatsOut(
                position=s.position,
                type=s.type,
                sent=s.sent,
                failed=s.failed,
                unknown=s.unknown,
                tasks_completed=s.tasks_completed,
                tasks_open=s.tasks_open,
            )
            for s in found.steps
        ],
    )
