"""Events in: replies, meetings, bounces, complaints and unsubscribes seen elsewhere first,
and Postmark's bounce/complaint webhook. Each event is applied once, however often sent.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound.postmark import read_postmark
from cadenza.services import events
from cadenza.services.signals import Outcome
from cadenza.web.auth import ApiWriter, Ctx
from cadenza.web.errors import NO_NUL, error_responses

router = APIRouter(tags=["events"])


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["reply", "meeting_booked", "bounce", "complaint", "unsubscribe"]
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
    unenrolls, a hard bounce, complaint or unsubscribe also marks the contact."""
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
    return _answer(events.receive(ctx, event))


@router.post(
    "/events/postmark",
    status_code=201,
    response_model=EventOut,
    responses={200: {"model": EventOut, "description": "Duplicate, or a type we ignore"}}
    | error_responses(401, 403, 413, 422),
)
def post_postmark(
    user: ApiWriter,
    ctx: Ctx,
    payload: dict[str, Any] = Body(..., description="Postmark's Bounce or SpamComplaint JSON"),
) -> JSONResponse:
    """Postmark's bounce and spam-complaint webhook, as Postmark sends it.

    Configure it in Postmark with a custom header `Authorization: Bearer <token>`.
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
