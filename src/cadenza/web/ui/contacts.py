"""Contacts: the index (search, filters, sort, pages, selection to enroll) and the record."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request

from cadenza.domain import policy
from cadenza.services import contact_index, enrollment_views, lists, outbox, tasks
from cadenza.services.contacts import get_contact
from cadenza.store.models import User
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 25


def may_enroll(user: User) -> bool:
    return policy.may_write(user) and user.can_enroll


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
    spec = contact_index.ContactFilter(
        query=q or None,
        timezone=timezone or None,
        enrolled=enrolled or None,
        status=status or None,
        sort=sort,
        descending=desc,
    )
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
        may_enroll=may_enroll(user),
        static_lists=[]
        if not policy.may_write(user)
        else [
            v.contact_list
            for v in lists.list_lists(ctx, limit=500)
            if v.contact_list.kind == "static"
        ],
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
        may_enroll=may_enroll(user),
        live=any(v.enrollment.state in ("active", "paused") for v in views),
    )
