"""Companies, deals, tickets and custom object records: the index and a record's page.

Records enroll through their associated contacts, so a record's page lists those
contacts (primary first) with a checkbox each: "Enroll in sequence" opens the enroll
dialog for the record and the contacts ticked (see enroll.py for how it asks when
none is ticked and several are associated).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse

from cadenza.domain import policy
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.crm import contact_index, records
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

PER_PAGE = 25
MAX_SELECTION = 50  # a page of records, with room to spare
TYPE_NAME = Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")


@router.get("/records/{type_name}")
def record_index(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    type_name: str = TYPE_NAME,
    q: str = Query("", max_length=200),
    after: int | None = Query(None, ge=0, le=MAX_ID),
):
    object_type, found = records.search_records(
        ctx, type_name, q or None, limit=PER_PAGE + 1, after_id=after or None
    )
    more = len(found) > PER_PAGE
    found = found[:PER_PAGE]
    columns = [p["name"] for p in object_type.properties][:4]

    def link(**changes) -> str:
        params = {"q": q, **changes}
        query = urlencode({k: v for k, v in params.items() if v not in ("", None)})
        return f"/records/{object_type.name}" + (f"?{query}" if query else "")

    return render(
        request,
        "records/index.html",
        object_type=object_type,
        types=records.list_types(ctx),
        found=found,
        columns=columns,
        q=q,
        next_link=link(after=found[-1].id) if more else None,
        first_link=link() if after else None,
        may_enroll=policy.may_enroll(user),
    )


@router.get("/records/{type_name}/enroll")
def enroll_selected(
    user: PageWriter,
    ctx: Ctx,
    type_name: str = TYPE_NAME,
    record: list[int] = Query(default_factory=list, max_length=MAX_SELECTION),
):
    """One record: the dialog for it (it remembers the record, asks which contacts). Several:
    each one's primary (else first) associated contact; the enrollments then remember no
    record, since an enrollment comes from one record at most."""
    if len(record) == 1:
        query = urlencode({"record_type": type_name, "record_id": record[0]})
        return RedirectResponse(f"/enroll?{query}", status_code=303)
    contact_ids = []
    for record_id in dict.fromkeys(record):
        associations = records.get_record(ctx, type_name, record_id).associations
        if associations:  # primary first
            contact_ids.append(associations[0].contact_id)
    if not contact_ids:
        raise CadenzaError(
            ErrorCode.NO_ASSOCIATED_CONTACT,
            "none of the chosen records has an associated contact to enroll",
        )
    return RedirectResponse(
        "/enroll?" + urlencode([("contact", c) for c in contact_ids]), status_code=303
    )


@router.get("/records/{type_name}/{record_id}")
def record_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    type_name: str = TYPE_NAME,
    record_id: int = Path(ge=1, le=MAX_ID),
):
    view = records.get_record(ctx, type_name, record_id)
    contacts = {c.id: c for c in contact_index.get_contacts(
        ctx, [a.contact_id for a in view.associations] + [e.contact_id for e in view.enrollments]
    )}  # fmt: skip
    return render(
        request,
        "records/record.html",
        view=view,
        contacts=contacts,
        may_enroll=policy.may_enroll(user),
    )
