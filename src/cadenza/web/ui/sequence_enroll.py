"""A sequence page's "Enroll contacts": search and pick contacts, or paste addresses,
then the same enroll dialog as everywhere else (`/enroll?sequence=…&contact=…`).

Pasted addresses are looked up by `services.contacts.resolve_emails`; an address with
no contact is reported, and becomes a new contact only when the user confirms it
("Create them and continue"), never silently.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request

from cadenza.services.access import authorize_enrolling
from cadenza.services.accounts.users import UserView
from cadenza.services.crm import contact_index, contacts
from cadenza.services.sequences.catalog import get_sequence
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 25
MAX_PASTE_CHARS = 50_000


def _enroller(user: PageWriter) -> UserView:
    authorize_enrolling(user)  # the rule the enroll service applies again on submit
    return user


@router.get("/sequences/{sequence_id}/enroll")
def pick_contacts(
    request: Request,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    q: str = Query("", max_length=200),
    user: UserView = Depends(_enroller),
):
    sequence = get_sequence(ctx, sequence_id, actor_id=user.id)
    found = None
    if q.strip():
        spec = contact_index.ContactFilter(query=q)
        found = contact_index.browse_contacts(ctx, spec, per_page=PER_PAGE)
    return render(
        request, "sequences/enroll_contacts.html", sequence=sequence, q=q, found=found,
        pasted=None, text="",
    )  # fmt: skip


@router.post("/sequences/{sequence_id}/enroll/emails")
def paste_emails(
    request: Request,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    emails: str = Form("", max_length=MAX_PASTE_CHARS),
    create_unknown: bool = Form(False),
    user: UserView = Depends(_enroller),
):
    sequence = get_sequence(ctx, sequence_id, actor_id=user.id)
    pasted = contacts.resolve_emails(ctx, emails, create_unknown=create_unknown, actor_id=user.id)
    return render(
        request, "sequences/enroll_contacts.html", sequence=sequence, q="", found=None,
        pasted=pasted, text=emails,
    )  # fmt: skip
