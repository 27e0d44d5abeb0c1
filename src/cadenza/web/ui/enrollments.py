"""Enrollments: filter by sequence and state, each with its projected timeline in the
contact's zone and the viewer's; pause, resume and unenroll one or many."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse

from cadenza.domain import policy
from cadenza.domain.enums import EnrollmentState
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.analytics.results import enrollment_timeline
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.sequences.catalog import list_sequences
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.routes.enrollments import BULK_ACTION_LIMIT, guarded, visible_enrollment
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 25
ACTIONS = {
    "pause": enrollment_control.pause,
    "resume": enrollment_control.resume,
    "unenroll": enrollment_control.unenroll,
}


def _action(name: str):
    if name not in ACTIONS:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "action must be pause, resume or unenroll")
    return ACTIONS[name]


@router.get("/enrollments")
def enrollment_list(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    sequence: int | None = Query(None, ge=1, le=MAX_ID),
    state: str = Query("", max_length=20),
    q: str = Query("", max_length=200),
    after: int | None = Query(None, ge=0, le=MAX_ID),
):
    """Newest first (what a rep looks for is what just happened), searchable by contact
    and sequence; `after` is the last id of the previous page."""
    found = enrollment_views.list_enrollments(
        ctx,
        sequence_id=sequence,
        state=state or None,
        actor_id=user.id,
        limit=PER_PAGE + 1,
        after_id=after,
        query=q or None,
        newest_first=True,
    )
    more = len(found) > PER_PAGE
    views = [enrollment_views.get_enrollment(ctx, e.id) for e in found[:PER_PAGE]]
    return render(
        request,
        "enrollments/list.html",
        views=views,
        sequences=list_sequences(ctx, actor_id=user.id),
        states=[s.value for s in EnrollmentState],
        sequence=sequence,
        state=state,
        q=q,
        next_link=urlencode(
            {k: v for k, v in {"sequence": sequence or "", "state": state, "q": q}.items() if v}
        ),
        next_after=views[-1].enrollment.id if more else None,
        may_act=policy.may_write(user),
    )


@router.get("/enrollments/{enrollment_id}")
def enrollment_detail(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    enrollment_id: int = Path(ge=1, le=MAX_ID),
):
    view = visible_enrollment(ctx, user, enrollment_id)
    events = enrollment_timeline(ctx, enrollment_id, actor_id=user.id)
    return render(
        request, "enrollments/detail.html", view=view, events=events, may_act=policy.may_write(user)
    )


@router.post("/enrollments/{enrollment_id}/{action}")
def enrollment_action(
    action: str,
    user: PageWriter,
    ctx: Ctx,
    enrollment_id: int = Path(ge=1, le=MAX_ID),
):
    guarded(_action(action), user)(ctx, enrollment_id)
    return RedirectResponse(f"/enrollments/{enrollment_id}", status_code=303)


@router.post("/enrollments")
async def enrollment_bulk(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    form = await request.form()
    ids = [int(v) for v in form.getlist("enrollment") if str(v).isdigit() and int(v) <= MAX_ID]
    if not ids:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "select at least one enrollment")
    if len(ids) > BULK_ACTION_LIMIT:
        raise CadenzaError(
            ErrorCode.BULK_LIMIT_EXCEEDED, f"at most {BULK_ACTION_LIMIT} enrollments at once"
        )
    outcomes = enrollment_control.for_many(
        guarded(_action(str(form.get("action", ""))), user), ctx, ids
    )
    return render(request, "enrollments/bulk_result.html", outcomes=outcomes)
