"""Events in: replies, meetings, bounces, complaints and unsubscribes seen elsewhere first,
and Postmark's bounce/complaint webhook. Each event is applied once, however often sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound.postmark import read_postmark
from cadenza.services.signals import events
from cadenza.services.signals.effects import Outcome
from cadenza.web.auth import ApiAdmin, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, after_id, page

router = APIRouter(tags=["events"])


# What an integration may report (the values, so that a refusal reads as before); auto-replies
# come from the inbox only, opens and clicks from the tracking links.
_POSTABLE = tuple(
    k.value
    for k in (
        EventKind.REPLY,
        EventKind.MEETING_BOOKED,
        EventKind.BOUNCE,
        EventKind.COMPLAINT,
        EventKind.UNSUBSCRIBE,
    )
)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal[_POSTABLE]  # type: ignore[valid-type]  # the values, spelt once above
    event_id: str = Field(
        ...,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Your id for this event: sending it again changes nothing.",
    )
    message_id: str | None = Field(
        None,
        max_length=255,
        pattern=r"^<[^<>\s]+@[^<>\s]+>$",
        description="The Message-ID header of the email we sent, e.g. <abc@example.com>",
    )
    contact_email: str | None = Field(None, max_length=320, pattern=NO_NUL)
    bounce_type: Literal["hard", "soft"] = Field(
        "hard", description="bounce only: hard (5.x.x) unenrolls, soft (4.x.x) is recorded"
    )
    occurred_at: AwareDatetime | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="Kept with the event")


class EventOut(BaseModel):
    event_id: int | None = Field(description="The email_events row")
    duplicate: bool = Field(description="True when this event was received before")
    matched: bool
    unenrolled: list[int]
    paused: list[int]
    ignored: str | None = None


def _answer(outcome: Outcome) -> JSONResponse:
    body = EventOut(**outcome.to_dict()).model_dump()
    return JSONResponse(body, status_code=200 if outcome.duplicate else 201)


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    responses={200: {"model": EventOut, "description": "Already received: nothing changed"}}
    | error_responses(401, 403, 404, 413, 422),
)
def post_event(
    body: EventIn,
    user: ApiWriter,
    ctx: Ctx,
) -> JSONResponse:
    """Records an event and applies the sequence rules: a reply or booked meeting
    unenrolls, a hard bounce, complaint or unsubscribe also marks the contact.

    Admins and their integration tokens (scope `events`) may post about any message or
    contact; a member only about messages sent from their mailboxes and contacts enrolled
    from them (403 `permission_denied` otherwise)."""
    if len(str(body.data)) > 10_000:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "data is limited to 10,000 characters")
    event = events.ExternalEvent(
        kind=EventKind(body.type),
        event_id=body.event_id,
        message_id=body.message_id,
        contact_email=body.contact_email,
        hard=body.bounce_type == "hard",
        occurred_at=body.occurred_at,
        data={**body.data, "received_from_user": user.id},
    )
    return _answer(events.receive(ctx, event, actor=user))


@router.post(
    "/events/postmark",
    status_code=201,
    response_model=EventOut,
    responses={200: {"model": EventOut, "description": "Duplicate, or a type we ignore"}}
    | error_responses(401, 403, 413, 422),
)
def post_postmark(
    user: ApiAdmin,
    ctx: Ctx,
    payload: dict[str, Any] = Body(..., description="Postmark's Bounce or SpamComplaint JSON"),
) -> JSONResponse:
    """Postmark's bounce and spam-complaint webhook, as Postmark sends it.

    Configure it in Postmark with a custom header `Authorization: Bearer <token>`, the
    token an admin's integration token (scope `events`): a provider reports on every
    mailbox, so it speaks with an admin's authority.
    Other record types (deliveries, opens, …) are answered 200 and ignored.
    """
    try:
        event = read_postmark(payload)
    except ValueError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    if event is None:
        ignored = str(payload.get("RecordType", "unknown"))[:50]
        body = EventOut(
            event_id=None, duplicate=False, matched=False, unenrolled=[], paused=[], ignored=ignored
        )
        return JSONResponse(body.model_dump(), status_code=200)
    return _answer(events.receive_provider(ctx, event, "postmark"))


# --- review and undo (admins) --------------------------------------------------------------


class EventRow(BaseModel):
    id: int
    kind: EventKind
    contact_id: int | None
    enrollment_id: int | None
    message_id: int | None = Field(description="The messages row, when the event names one")
    occurred_at: datetime
    revoked_at: datetime | None = Field(description="Set when an admin undid the event")
    cause_event_id: int | None = Field(
        None, description="The event that caused this one (a complaint's unsubscribe)"
    )
    source: str | None = Field(description="api, postmark, inbox, link…")
    unverified: str | None = Field(
        description="Why an inbound bounce or auto-reply was recorded without acting"
    )
    data: dict[str, Any]


class EventPage(BaseModel):
    results: list[EventRow]
    next_cursor: str | None


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=500, pattern=NO_NUL)


class RevokedOut(BaseModel):
    event_id: int
    contact_id: int | None
    unsubscribed_cleared: bool = Field(description="The contact may be enrolled again")
    bounced_cleared: bool


def _row(event: events.EventView) -> EventRow:
    return EventRow(
        id=event.id,
        kind=event.kind,
        contact_id=event.contact_id,
        enrollment_id=event.enrollment_id,
        message_id=event.message_id,
        occurred_at=event.occurred_at,
        revoked_at=event.revoked_at,
        cause_event_id=event.cause_event_id,
        source=event.data.get("source"),
        unverified=event.data.get("unverified"),
        data=event.data,
    )


@router.get("/events", response_model=EventPage, responses=error_responses(401, 403, 422))
def list_events(
    user: ApiAdmin,
    ctx: Ctx,
    kind: list[EventKind] | None = Query(None),
    unverified: bool = Query(False, description="Only inbound signals that changed nothing"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Events newest first, for review: complaints and unsubscribes to check, and the
    bounces and auto-replies recorded as unverified (they named no message we sent)."""
    rows = events.list_events(
        ctx, kinds=kind, unverified=unverified, before_id=after_id(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return page([_row(e) for e in rows], rows[-1].id if more else None)


@router.post(
    "/events/{event_id}/revoke",
    response_model=RevokedOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def revoke_event(
    event_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: RevokeIn,
    user: ApiAdmin,
    ctx: Ctx,
) -> RevokedOut:
    """Undoes a complaint, unsubscribe or bounce posted by mistake: the event is kept and
    marked revoked, the contact's mark is cleared unless another such event stands, and
    the audit log records who and why. Enrollments it ended stay ended."""
    done = events.revoke(ctx, user, event_id, body.reason)
    return RevokedOut(**done.__dict__)
