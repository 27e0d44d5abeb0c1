"""Sequences: the list with each one's key numbers, a sequence's steps, creating one
(then edited in the editor) and archiving one (enrollments in flight go on)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from cadenza.domain.errors import CadenzaError
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.analytics.results import daily_activity, sequence_report
from cadenza.services.analytics.stats import sequence_stats
from cadenza.services.automation.rules import list_rules
from cadenza.services.enrollment.views import live_without_reply_detection
from cadenza.services.sequences.catalog import (
    archive_sequence,
    create_sequence,
    get_sequence,
    list_sequences,
    step_specs,
    unarchive_sequence,
)
from cadenza.services.sequences.preview import headline_context, step_headlines
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.charts import daily_chart
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

CHART_DAYS = 30
MAX_RULES_SHOWN = 50

router = APIRouter(dependencies=[Depends(check_csrf)])

FIRST_STEP = {"type": "email", "subject": "Hello {{ contact.firstname | default('there') }}",
              "body": "<p>Hi {{ contact.firstname | default('there') }},</p>"}  # fmt: skip


@router.get("/sequences")
def sequence_list(
    request: Request,
    _user: PageUser,
    ctx: Ctx,
    archived: bool = Query(False),
):
    """The live sequences, or with ?archived=1 the archived ones (which can be unarchived)."""
    rows = [(s, sequence_stats(ctx, s.id)) for s in list_sequences(ctx, archived=archived)]
    return render(request, "sequences/list.html", rows=rows, error=None, name="", archived=archived)


@router.post("/sequences")
def new_sequence(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    name: str = Form(""),
):
    """Starts with one email so the editor has something to show; the rep edits it there."""
    try:
        sequence = create_sequence(ctx, user.id, name, steps=[FIRST_STEP])
    except CadenzaError as exc:
        rows = [(s, sequence_stats(ctx, s.id)) for s in list_sequences(ctx)]
        return render(
            request, "sequences/list.html", status_code=exc.http_status, rows=rows,
            error=exc.message, name=name, archived=False,
        )  # fmt: skip
    return RedirectResponse(f"/sequences/{sequence.id}/edit", status_code=303)


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
    sequence = get_sequence(ctx, sequence_id)
    specs = step_specs(sequence)
    headlines = step_headlines(
        specs,
        headline_context(ctx, user.id),
        thread_follow_ups=SequenceSettings.from_dict(sequence.settings).thread_follow_ups,
    )
    report = sequence_report(ctx, sequence_id)
    days = daily_activity(ctx, sequence_id, days=CHART_DAYS, today=ctx.clock.now().date())
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
    )
