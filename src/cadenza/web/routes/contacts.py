"""Contacts: create, list and search, read, update, delete (erase), CSV import, export of
everything held about one, and lifting an erased address's suppression."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.crm import contact_export, contact_import, contacts, suppressions
from cadenza.services.crm.contacts import ContactView
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, page

router = APIRouter(tags=["contacts"])


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, pattern=NO_NUL)
    firstname: str | None = Field(None, pattern=NO_NUL)
    lastname: str | None = Field(None, pattern=NO_NUL)
    company: str | None = Field(None, pattern=NO_NUL)
    jobtitle: str | None = Field(None, pattern=NO_NUL)
    phone: str | None = Field(None, pattern=NO_NUL)
    timezone: str | None = Field(
        None, pattern=NO_NUL, description="IANA time zone, e.g. Europe/Berlin"
    )
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ContactOut(BaseModel):
    id: int
    email: str | None
    firstname: str | None
    lastname: str | None
    company: str | None
    jobtitle: str | None
    phone: str | None
    timezone: str | None
    properties: dict[str, Any]
    bounced: bool
    unsubscribed: bool
    blocked: bool
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    results: list[ContactOut]
    next_cursor: str | None


class RowErrorOut(BaseModel):
    line: int
    code: str
    message: str


class ImportOut(BaseModel):
    rows: int
    created: int
    updated: int
    errors: list[RowErrorOut]


def contact_out(contact: ContactView) -> ContactOut:
    return ContactOut(
        id=contact.id,
        email=contact.email,
        firstname=contact.firstname,
        lastname=contact.lastname,
        company=contact.company,
        jobtitle=contact.jobtitle,
        phone=contact.phone,
        timezone=contact.timezone,
        properties=contact.properties or {},
        bounced=contact.bounced_at is not None,
        unsubscribed=contact.unsubscribed_at is not None,
        blocked=contact.blocked,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def _property_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name or "\x00" in pair:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR, f"property filters are NAME:VALUE, got {pair!r}"
            )
        filters[name] = value
    return filters


def _data(body: ContactIn, *, partial: bool) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=partial)
    return data


ContactId = Path(ge=1, le=MAX_ID)


@router.post(
    "/contacts",
    status_code=201,
    response_model=ContactOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_contact(
    body: ContactIn,
    user: ApiWriter,
    ctx: Ctx,
) -> ContactOut:
    return contact_out(contacts.create_contact(ctx, _data(body, partial=False), user.id))


@router.get("/contacts", response_model=ContactPage, responses=error_responses(401, 422))
def list_contacts(
    _user: ApiUser,
    ctx: Ctx,
    q: str | None = Query(None, pattern=NO_NUL, description="Part of an email, name or company"),
    property: list[str] = Query(
        default_factory=list,
        description="Custom property filter NAME:VALUE (exact); repeat to combine",
    ),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    found = contacts.search_contacts(
        ctx, q, properties=_property_filters(property), limit=limit, after_id=after_id(cursor)
    )
    return page([contact_out(c) for c in found.results], found.next_cursor)


@router.get(
    "/contacts/{contact_id}", response_model=ContactOut, responses=error_responses(401, 404, 422)
)
def get_contact(
    _user: ApiUser,
    ctx: Ctx,
    contact_id: int = ContactId,
) -> ContactOut:
    return contact_out(contacts.get_contact(ctx, contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response_model=ContactOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_contact(
    body: ContactIn,
    user: ApiWriter,
    ctx: Ctx,
    contact_id: int = ContactId,
) -> ContactOut:
    return contact_out(contacts.update_contact(ctx, contact_id, _data(body, partial=True), user.id))


@router.delete(
    "/contacts/{contact_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 422)
)
def delete_contact(
    user: ApiWriter,
    ctx: Ctx,
    contact_id: int = ContactId,
) -> None:
    contacts.delete_contact(ctx, contact_id, user.id)


@router.post(
    "/contacts/import", response_model=ImportOut, responses=error_responses(401, 403, 413, 422)
)
def import_contacts(
    _user: ApiWriter,
    ctx: Ctx,
    file: UploadFile = File(..., description="CSV with an 'email' column"),
) -> ImportOut:
    data = file.file.read(ctx.settings.import_max_bytes + 1)
    if len(data) > ctx.settings.import_max_bytes:
        raise CadenzaError(ErrorCode.FILE_TOO_LARGE, "the file is larger than the import limit")
    report = contact_import.import_contacts(ctx, data)
    return ImportOut(
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        errors=[RowErrorOut(line=e.line, code=e.code, message=e.message) for e in report.errors],
    )


def export_response(document: dict, contact_id: int) -> JSONResponse:
    """The export as a file to save (the API and the web app's "Download data")."""
    return JSONResponse(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/contacts/{contact_id}/export",
    responses={
        200: {"description": "The contact's data as JSON (docs/contact-data.md)"},
        **error_responses(401, 404, 422),
    },
)
def export_contact(
    user: ApiUser,
    ctx: Ctx,
    contact_id: int = ContactId,
) -> JSONResponse:
    """Everything held about the contact that you may read; audited."""
    document = contact_export.export_contact(ctx, contact_id, actor_id=user.id)
    return export_response(document, contact_id)


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, pattern=NO_NUL)


class SuppressionOut(BaseModel):
    id: int
    erased_contact_id: int | None
    created_at: datetime
    lifted: bool


@router.post(
    "/suppressions/lift",
    response_model=SuppressionOut,
    responses=error_responses(401, 403, 404, 422),
)
def lift_suppression(body: SuppressionIn, user: ApiUser, ctx: Ctx) -> SuppressionOut:
    """Admins: let an erased contact's address be added again (audited, without it)."""
    lifted = suppressions.lift(ctx, body.email, actor_id=user.id)
    return SuppressionOut(
        id=lifted.id, erased_contact_id=lifted.contact_id, created_at=lifted.created_at,
        lifted=True,
    )  # fmt: skip
