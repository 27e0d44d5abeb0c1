"""Lists: the index (and a new static list), a list's members to select and enroll, and
a whole list enrolled in batches by the worker with its progress.

Selected members go to the enroll dialog like a contacts-index selection, so the
dialog's bulk limit applies per batch. "Enroll the whole list" starts the same job as
`POST /api/v1/lists/{id}/enrollments` (services/enrollment/list_jobs.py) and shows its page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from cadenza.domain import policy
from cadenza.domain.enums import ListKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import row_id_of
from cadenza.services.crm import lists
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.services.sequences.catalog import list_sequences
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui import enroll
from cadenza.web.ui.forms import FormError
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 50
MAX_LISTS = 500


@router.get("/lists")
def list_index(
    request: Request,
    user: PageUser,
    ctx: Ctx,
):
    return render(
        request,
        "lists/index.html",
        found=lists.list_lists(ctx, limit=MAX_LISTS),
        may_write=policy.may_write(user),
    )


@router.post("/lists")
def create_static_list(
    user: PageWriter,
    ctx: Ctx,
    name: str = Form(max_length=300),
):
    created = lists.create_list(ctx, user.id, name, ListKind.STATIC)
    return RedirectResponse(f"/lists/{created.contact_list.id}", status_code=303)


@router.post("/lists/members")
async def add_members(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    """The contacts index's "Add to list": the selection joins a static list."""
    form = await request.form()
    list_id = str(form.get("list", ""))
    if row_id_of(list_id) is None:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "choose a static list")
    chosen = [str(v) for v in form.getlist("contact")]
    if not chosen or any(row_id_of(v) is None for v in chosen):
        raise CadenzaError(ErrorCode.NO_CONTACTS, "select contacts to add to the list first")
    changed = lists.change_members(ctx, user.id, int(list_id), add=[int(v) for v in chosen])
    return render(
        request, "lists/added.html", list_id=int(list_id), changed=changed, asked=len(chosen)
    )


@router.get("/lists/jobs/{job_id}")
def job_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    job_id: int = Path(ge=1, le=MAX_ID),
):
    job = list_enrollment.describe(list_enrollment.get_job(ctx, job_id, actor_id=user.id))
    template = "lists/job_progress.html" if request.headers.get("hx-request") else "lists/job.html"
    return render(request, template, job=job)


@router.get("/lists/{list_id}")
def list_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    list_id: int = Path(ge=1, le=MAX_ID),
    after: int | None = Query(None, ge=0, le=MAX_ID),
):
    view = lists.get_list(ctx, list_id)
    found = lists.members(ctx, list_id, limit=PER_PAGE + 1, after_id=after or None)
    return render(
        request,
        "lists/detail.html",
        view=view,
        members=found[:PER_PAGE],
        next_after=found[PER_PAGE - 1].id if len(found) > PER_PAGE else None,
        paged=after is not None,
        sequences=list_sequences(ctx, actor_id=user.id),
        may_enroll=policy.may_enroll(user),
    )


@router.post("/lists/{list_id}/enroll")
async def enroll_whole_list(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    list_id: int = Path(ge=1, le=MAX_ID),
):
    """The enroll dialog's choices (`read_options`, the same as for chosen contacts),
    checked now; the batches are left to the worker and the job's page follows them.
    From the dialog (htmx) a refusal shows next to its field; nothing is started."""
    form = await request.form(max_fields=enroll.MAX_FORM_FIELDS)
    from_dialog = request.headers.get("hx-request") == "true"
    try:
        sequence_id = enroll.read_sequence_id(form)
        job = list_enrollment.start(ctx, user.id, list_id, sequence_id, enroll.read_options(form))
    except (FormError, CadenzaError) as exc:
        if not from_dialog:
            if isinstance(exc, FormError):
                raise CadenzaError(ErrorCode.VALIDATION_ERROR, exc.message) from None
            raise
        outcome = enroll.Outcome([], {}, enroll.field_errors(exc), {}, enroll.read_tokens(form))
        return render(request, "enroll/check.html", outcome=outcome, fields=enroll.FIELDS)
    page = f"/lists/jobs/{job.id}"
    if from_dialog:
        return Response(headers={"HX-Redirect": page})
    return RedirectResponse(page, status_code=303)
