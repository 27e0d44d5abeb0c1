"""Contacts: the index (search, filters, sort, pages, selection to enroll), the record
with its associated records, and editing it (through the API's own service, so the
same validation answers both)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from cadenza.domain import policy
from cadenza.domain.contact_fields import CONTACT_FIELDS
from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, UserRole
from cadenza.domain.errors import CadenzaError
from cadenza.services.crm import contact_export, contact_index, contacts, lists, records
from cadenza.services.crm.contacts import get_contact
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment import views as enrollment_views
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.enroll import MAX_CONTACTS_IN_URL
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 25


@router.get("/contacts")
def contact_index_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    q: str = Query("", max_length=200),
    timezone: str = Query("", max_length=64),
    enrolled: str = Query("", max_length=3),
    status: str = Query("", max_length=20),
    sort: str = Query("name", max_length=20),
    desc: bool = False,
    page: int = Query(1, ge=1, le=100_000),
):
    spec = _spec(q, timezone, enrolled, status, sort, desc)
    found = contact_index.browse_contacts(ctx, spec, page=page, per_page=PER_PAGE)
    filters = {"q": q, "timezone": timezone, "enrolled": enrolled, "status": status}

    def link(**changes) -> str:
        params = {**filters, "sort": sort, "desc": "true" if desc else "", "page": page, **changes}
        return "/contacts?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return render(
        request,
        "contacts/index.html",
        found=found,
        filters=filters,
        sort=sort,
        desc=desc,
        link=link,
        zones=contact_index.contact_timezones(ctx),
        may_enroll=policy.may_enroll(user),
        ids_link="/contacts/ids?"
        + urlencode(
            {
                k: v
                for k, v in {**filters, "sort": sort, "desc": "true" if desc else ""}.items()
                if v
            }
        ),
        max_selection=MAX_CONTACTS_IN_URL,
        static_lists=lists.static_lists(ctx, limit=500) if policy.may_write(user) else [],
    )


@router.get("/contacts/ids")
def matching_contact_ids(
    user: PageUser,
    ctx: Ctx,
    q: str = Query("", max_length=200),
    timezone: str = Query("", max_length=64),
    enrolled: str = Query("", max_length=3),
    status: str = Query("", max_length=20),
    sort: str = Query("name", max_length=20),
    desc: bool = False,
):
    """ "Select all N matching": the ids the index's filters match, up to what the enroll
    dialog takes (`capped` says when more match)."""
    spec = _spec(q, timezone, enrolled, status, sort, desc)
    ids, total = contact_index.matching_ids(ctx, spec, MAX_CONTACTS_IN_URL)
    return {"ids": ids, "total": total, "capped": total > len(ids)}


def _spec(q, timezone, enrolled, status, sort, desc) -> contact_index.ContactFilter:
    return contact_index.ContactFilter(
        query=q or None,
        timezone=timezone or None,
        enrolled=enrolled or None,
        status=status or None,
        sort=sort,
        descending=desc,
    )


@router.get("/contacts/{contact_id}")
def contact_record(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    contact_id: int = Path(ge=1, le=MAX_ID),
):
    contact = get_contact(ctx, contact_id)
    views = [
        enrollment_views.get_enrollment(ctx, e.id)
        for e in reversed(
            enrollment_views.list_enrollments(ctx, contact_id=contact_id, actor_id=user.id)
        )
    ]
    # Emails and tasks, newest first: what this contact received and what was done for them.
    # Like the outbox and the task queue: members and viewers see their own, admins all.
    messages = outbox.list_messages(ctx, contact_id=contact_id, limit=100, actor_id=user.id)
    contact_tasks = tasks.list_tasks(
        ctx, contact_id=contact_id, status=None, limit=100, actor_id=user.id
    )
    activity = sorted(
        [("email", m.sent_at or m.created_at, m) for m in messages]
        + [("task", t.completed_at or t.due_at, t) for t in contact_tasks],
        key=lambda item: item[1],
        reverse=True,
    )
    return render(
        request,
        "contacts/record.html",
        contact=contact,
        views=views,
        activity=activity,
        may_enroll=policy.may_enroll(user),
        may_edit=user.role != UserRole.VIEWER,
        associations=records.list_associations(ctx, contact_id=contact_id, limit=MAX_ASSOCIATIONS),
        live=any(v.enrollment.state in LIVE_ENROLLMENT_STATES for v in views),
    )


@router.get("/contacts/{contact_id}/export")
def contact_data(
    user: PageUser,
    ctx: Ctx,
    contact_id: int = Path(ge=1, le=MAX_ID),
):
    """The record page's "Download data": the same document as the API's export."""
    document = contact_export.export_contact(ctx, contact_id, actor_id=user.id)
    return JSONResponse(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.json"',
            "Cache-Control": "no-store",
        },
    )


# The form's fields: the contact's columns, in the order the record page shows them.
EDIT_FIELDS = ("email", "firstname", "lastname", "company", "jobtitle", "phone", "timezone")
MAX_ASSOCIATIONS = 200
MAX_NEW_PROPERTIES = 3


def _edit_form(request: Request, contact, values: dict, error: str | None, status: int = 200):
    response = render(
        request,
        "contacts/edit.html",
        contact=contact,
        values=values,
        fields=EDIT_FIELDS,
        new_rows=range(MAX_NEW_PROPERTIES),
        error=error,
    )
    response.status_code = status
    return response


@router.get("/contacts/{contact_id}/edit")
def edit_contact_page(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    contact_id: int = Path(ge=1, le=MAX_ID),
):
    contact = get_contact(ctx, contact_id)
    values = {f: getattr(contact, f) or "" for f in EDIT_FIELDS}
    return _edit_form(request, contact, values, None)


def form_changes(form) -> dict:
    """The posted form as the API's PATCH body: every column (blank clears it), existing
    properties (`prop:<name>`, blank removes it) and new ones (`new_name_N`, `new_value_N`)."""
    data: dict = {f: str(form.get(f, "")) for f in EDIT_FIELDS if f in CONTACT_FIELDS}
    properties: dict = {}
    for key, value in form.multi_items():
        if key.startswith("prop:"):
            properties[key.removeprefix("prop:")] = str(value)
    for n in range(MAX_NEW_PROPERTIES):
        name = str(form.get(f"new_name_{n}", "")).strip()
        if name:
            properties[name] = str(form.get(f"new_value_{n}", ""))
    if properties:
        data["properties"] = properties
    return data


@router.post("/contacts/{contact_id}/edit")
async def save_contact(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    contact_id: int = Path(ge=1, le=MAX_ID),
):
    """Saved by `services.contacts.update_contact`, as `PATCH /api/v1/contacts/{id}`: a
    refusal (bad email or zone, an email another contact has) keeps what was typed."""
    contact = get_contact(ctx, contact_id)
    form = await request.form()
    data = form_changes(form)
    try:
        contacts.update_contact(ctx, contact_id, data, user.id)
    except CadenzaError as exc:
        values = {f: data.get(f, "") for f in EDIT_FIELDS}
        status = 409 if exc.code == "conflict" else 422
        return _edit_form(request, contact, values, exc.message, status)
    return RedirectResponse(f"/contacts/{contact_id}", status_code=303)
