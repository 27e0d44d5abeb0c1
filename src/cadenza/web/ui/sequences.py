"""Sequences: the list with each one's key numbers (by folder, live or archived, and the
sequence templates), a sequence's steps and running enrollments, creating one (then
edited in the editor), sharing, cloning, moving and archiving one (enrollments in flight
go on). Who may do which is the policy's, asked by the services."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from cadenza.domain.enums import EnrollmentState, Sharing
from cadenza.domain.errors import CadenzaError
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.analytics.results import daily_activity, sequence_report
from cadenza.services.analytics.stats import sequence_stats
from cadenza.services.automation.rules import list_rules
from cadenza.services.enrollment.views import list_enrollments, live_without_reply_detection
from cadenza.services.sequences.catalog import (
    archive_sequence,
    create_sequence,
    get_sequence,
    list_sequences,
    step_specs,
    unarchive_sequence,
)
from cadenza.services.sequences.playbooks import (
    clone_sequence,
    list_folders,
    rename_folder,
    update_placement,
)
from cadenza.services.sequences.preview import headline_context, step_headlines
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.charts import daily_chart
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

CHART_DAYS = 30
MAX_RULES_SHOWN = 50
MAX_RUNNING_SHOWN = 20
SHARING_LABELS = {
    Sharing.PRIVATE: "Private: only me and admins",
    Sharing.TEAM_USE: "Team can use: everyone sees and enrolls",
    Sharing.TEAM_EDIT: "Team can edit: members edit it too",
}

router = APIRouter(dependencies=[Depends(check_csrf)])

FIRST_STEP = {"type": "email", "subject": "Hello {{ contact.firstname | default('there') }}",
              "body": "<p>Hi {{ contact.firstname | default('there') }},</p>"}  # fmt: skip


def _index(request: Request, user, ctx, *, archived: bool, folder: str | None, **extra):
    shown = list_sequences(ctx, archived=archived, actor_id=user.id, folder=folder or None)
    return render(
        request, "sequences/list.html",
        rows=[(s, sequence_stats(ctx, s.id, actor_id=user.id)) for s in shown],
        folders=list_folders(ctx, actor_id=user.id, archived=archived),
        templates=[] if archived or folder else list_sequences(
            ctx, actor_id=user.id, templates=True
        ),
        archived=archived, folder=folder or "", sharing_labels=SHARING_LABELS,
        **{"error": None, "name": "", **extra},
    )  # fmt: skip


@router.get("/sequences")
def sequence_list(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    archived: bool = Query(False),
    folder: str | None = Query(None, max_length=200),
):
    """The live sequences, or with ?archived=1 the archived ones (which can be unarchived),
    of one folder with ?folder=; the sequence templates above them."""
    return _index(request, user, ctx, archived=archived, folder=folder)


@router.post("/sequences")
def new_sequence(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    name: str = Form(""),
    folder: str = Form("", max_length=200),
):
    """Starts with one email so the editor has something to show; the rep edits it there."""
    try:
        sequence = create_sequence(ctx, user.id, name, steps=[FIRST_STEP], folder=folder)
    except CadenzaError as exc:
        response = _index(
            request, user, ctx, archived=False, folder=None, error=exc.message, name=name
        )
        response.status_code = exc.http_status
        return response
    return RedirectResponse(f"/sequences/{sequence.id}/edit", status_code=303)


@router.post("/sequence-folders/rename")
def folder_rename(
    user: PageWriter,
    ctx: Ctx,
    folder: str = Form(..., max_length=200),
    name: str = Form(..., max_length=200),
):
    """Renames the folder on every sequence in it (when the user may edit each)."""
    rename_folder(ctx, folder, name, actor_id=user.id)
    return RedirectResponse(f"/sequences?{urlencode({'folder': name.strip()})}", status_code=303)


@router.post("/sequences/{sequence_id}/sharing")
def share(
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    sharing: str = Form(..., max_length=20),
    is_template: bool = Form(False),
):
    """The share dialog: who else may use or edit it, and whether it is a template."""
    update_placement(ctx, sequence_id, actor_id=user.id, sharing=sharing, is_template=is_template)
    return RedirectResponse(f"/sequences/{sequence_id}", status_code=303)


@router.post("/sequences/{sequence_id}/folder")
def move(
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    folder: str = Form("", max_length=200),
):
    """Into a folder (a new name makes a new folder), or out of any with an empty name."""
    update_placement(ctx, sequence_id, actor_id=user.id, folder=folder)
    return RedirectResponse(f"/sequences/{sequence_id}", status_code=303)


@router.post("/sequences/{sequence_id}/clone")
def clone(
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    name: str = Form("", max_length=200),
    folder: str | None = Form(None, max_length=200),
):
    """A private copy, opened in the editor; also "use this template"."""
    copy = clone_sequence(
        ctx, sequence_id, user.id, name=name.strip() or None,
        **({} if folder is None else {"folder": folder}),
    )  # fmt: skip
    return RedirectResponse(f"/sequences/{copy.id}/edit", status_code=303)


@router.post("/sequences/{sequence_id}/archive")
def archive(
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    archive_sequence(ctx, sequence_id, actor_id=user.id)
    return Response(status_code=204, headers={"HX-Redirect": f"/sequences/{sequence_id}"})


@router.post("/sequences/{sequence_id}/unarchive")
def unarchive(
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    unarchive_sequence(ctx, sequence_id, actor_id=user.id)
    return Response(status_code=204, headers={"HX-Redirect": f"/sequences/{sequence_id}"})


@router.get("/sequences/{sequence_id}")
def sequence_detail(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    sequence = get_sequence(ctx, sequence_id, actor_id=user.id)
    specs = step_specs(sequence)
    headlines = step_headlines(
        specs,
        headline_context(ctx, user.id),
        thread_follow_ups=SequenceSettings.from_dict(sequence.settings).thread_follow_ups,
    )
    report = sequence_report(ctx, sequence_id, actor_id=user.id)
    days = daily_activity(ctx, sequence_id, days=CHART_DAYS, today=ctx.clock.now().date())
    running = list_enrollments(
        ctx, sequence_id=sequence_id, state=EnrollmentState.ACTIVE, newest_first=True,
        limit=MAX_RUNNING_SHOWN, actor_id=user.id,
    )  # fmt: skip
    return render(
        request,
        "sequences/detail.html",
        sequence=sequence,
        specs=specs,
        headlines=headlines,
        stats=report.counts,
        report=report,
        chart=daily_chart(days),
        rules=list_rules(ctx, sequence_id=sequence_id, limit=MAX_RULES_SHOWN),
        unwatched=live_without_reply_detection(ctx, sequence_id, actor_id=user.id),
        running=running,
        running_more=len(running) == MAX_RUNNING_SHOWN,
        folders=list_folders(ctx, actor_id=user.id),
        sharing_labels=SHARING_LABELS,
    )
