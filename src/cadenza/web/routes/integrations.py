"""Integration tokens: API tokens an admin creates for another system, limited by scope;
and the booking webhooks of Cal.com and Calendly, authenticated by their signatures.

The `events` scope opens `POST /api/v1/events` and the provider webhooks and nothing
else, so a CRM or an email provider holding the token can report a reply or a bounce
but cannot read contacts or change sequences if it leaks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound import bookings as bookings_rules
from cadenza.domain.inbound.bookings import BookingProvider
from cadenza.services.accounts import users
from cadenza.services.signals import bookings
from cadenza.web.auth import ApiAdmin, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses

router = APIRouter(tags=["integration tokens"])


class IntegrationTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100, pattern=NO_NUL)
    scopes: list[Literal["events"]] = Field(["events"], min_length=1)


class IntegrationTokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IntegrationTokenCreated(IntegrationTokenOut):
    token: str = Field(description="Shown this once; only its hash is stored")


def _out(row) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": (row.scopes or "").split(),
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


@router.post(
    "/integration-tokens",
    status_code=201,
    response_model=IntegrationTokenCreated,
    responses=error_responses(401, 403, 422),
)
def create_integration_token(body: IntegrationTokenIn, user: ApiAdmin, ctx: Ctx) -> dict:
    """A token for another system, owned by the admin creating it, that opens only its
    scopes (`events`: posting events with that admin's authority)."""
    issued = users.create_token(ctx, user.id, body.name, scopes=list(body.scopes))
    [row] = [t for t in users.list_tokens(ctx, user.id) if t.id == issued.id]
    return {**_out(row), "token": issued.token}


@router.get(
    "/integration-tokens",
    response_model=list[IntegrationTokenOut],
    responses=error_responses(401, 403),
)
def list_integration_tokens(user: ApiAdmin, ctx: Ctx):
    """The calling admin's scoped tokens, live and revoked (prefixes only)."""
    return [_out(t) for t in users.list_tokens(ctx, user.id) if t.scopes]


@router.delete(
    "/integration-tokens/{token_id}",
    response_model=IntegrationTokenOut,
    responses=error_responses(401, 403, 404, 422),
)
def revoke_integration_token(
    user: ApiAdmin,
    ctx: Ctx,
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> dict:
    return _out(users.revoke_token(ctx, user.id, token_id, actor_id=user.id))


# --- booking webhooks: Cal.com and Calendly (docs/signals.md, "Booking webhooks") ---------


class BookingOut(BaseModel):
    event_id: int | None = Field(description="The email_events row (null when ignored)")
    duplicate: bool = Field(description="True when this booking was received before")
    matched: bool = Field(description="A contact has the attendee's address")
    unenrolled: list[int]
    paused: list[int]
    ignored: str | None = Field(None, description="An event type other than a booking")
    detail: str | None = None


async def _bounded_body(request: Request) -> bytes:
    """The raw body (the signature covers its exact bytes), refused past the limit."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > bookings_rules.MAX_BODY_BYTES:
            raise CadenzaError(
                ErrorCode.BODY_TOO_LARGE,
                f"a booking webhook body is limited to {bookings_rules.MAX_BODY_BYTES // 1024} KB",
            )
    return bytes(body)


async def _receive(request: Request, ctx, provider: BookingProvider) -> JSONResponse:
    body = await _bounded_body(request)
    header = request.headers.get(bookings_rules.SIGNATURE_HEADERS[provider])
    received = await run_in_threadpool(bookings.receive, ctx, provider, header, body)
    if received.outcome is None:
        out = BookingOut(
            event_id=None, duplicate=False, matched=False, unenrolled=[], paused=[],
            ignored=received.ignored,
        )  # fmt: skip
        return JSONResponse(out.model_dump(), status_code=200)
    outcome = received.outcome
    out = BookingOut(**outcome.to_dict())
    if outcome.duplicate:
        out.detail, status = "already received: nothing changed", 200
    elif not outcome.matched:
        out.detail, status = f"{bookings.NO_CONTACT}: recorded, nothing else", 202
    else:
        status = 201
    return JSONResponse(out.model_dump(), status_code=status)


_BOOKING_RESPONSES = {
    200: {"model": BookingOut, "description": "A duplicate, or an event type we ignore"},
    202: {"model": BookingOut, "description": "Recorded; no contact has the address"},
} | error_responses(401, 413, 422)


@router.post(
    "/integrations/calcom",
    status_code=201,
    response_model=BookingOut,
    responses=_BOOKING_RESPONSES,
    tags=["booking webhooks"],
)
async def calcom_booking(request: Request, ctx: Ctx) -> JSONResponse:
    """Cal.com's webhook. No token: the `X-Cal-Signature-256` header (hex HMAC-SHA256 of
    the raw body with the webhook's secret) is checked. `BOOKING_CREATED` records a
    `meeting_booked` signal for the attendee's contact; other triggers are ignored."""
    return await _receive(request, ctx, BookingProvider.CALCOM)


@router.post(
    "/integrations/calendly",
    status_code=201,
    response_model=BookingOut,
    responses=_BOOKING_RESPONSES,
    tags=["booking webhooks"],
)
async def calendly_booking(request: Request, ctx: Ctx) -> JSONResponse:
    """Calendly's webhook. No token: `Calendly-Webhook-Signature: t=<ts>,v1=<hex>` (HMAC-SHA256
    of "<ts>.<raw body>" with the signing key) is checked, and a timestamp more than three
    minutes away is refused. `invitee.created` records a `meeting_booked` signal."""
    return await _receive(request, ctx, BookingProvider.CALENDLY)


class BookingSecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(
        ...,
        min_length=bookings_rules.MIN_SECRET_CHARS,
        max_length=bookings_rules.MAX_SECRET_CHARS,
        pattern=NO_NUL,
        description="The secret (Cal.com) or signing key (Calendly); never shown again",
    )


class BookingSecretOut(BaseModel):
    provider: BookingProvider
    configured: bool
    set_at: datetime | None
    webhook_path: str


def _secret_out(status: bookings.SecretStatus) -> BookingSecretOut:
    return BookingSecretOut(
        provider=status.provider,
        configured=status.configured,
        set_at=status.set_at,
        webhook_path=f"/api/v1/integrations/{status.provider}",
    )


@router.get(
    "/integrations/booking-secrets",
    response_model=list[BookingSecretOut],
    responses=error_responses(401, 403),
    tags=["booking webhooks"],
)
def list_booking_secrets(user: ApiAdmin, ctx: Ctx) -> list[BookingSecretOut]:
    """Which schedulers have a signing secret set (never the secret)."""
    return [_secret_out(s) for s in bookings.secret_status(ctx, user.id)]


@router.put(
    "/integrations/booking-secrets/{provider}",
    response_model=BookingSecretOut,
    responses=error_responses(401, 403, 422),
    tags=["booking webhooks"],
)
def set_booking_secret(
    provider: BookingProvider, body: BookingSecretIn, user: ApiAdmin, ctx: Ctx
) -> BookingSecretOut:
    """Sets the secret the scheduler signs with (stored sealed; replaces an earlier one)."""
    bookings.set_secret(ctx, user.id, provider, body.secret)
    [status] = [s for s in bookings.secret_status(ctx, user.id) if s.provider == provider]
    return _secret_out(status)


@router.delete(
    "/integrations/booking-secrets/{provider}",
    response_model=BookingSecretOut,
    responses=error_responses(401, 403, 422),
    tags=["booking webhooks"],
)
def clear_booking_secret(provider: BookingProvider, user: ApiAdmin, ctx: Ctx) -> BookingSecretOut:
    """Forgets the secret: the scheduler's deliveries are refused (401) until one is set."""
    bookings.clear_secret(ctx, user.id, provider)
    [status] = [s for s in bookings.secret_status(ctx, user.id) if s.provider == provider]
    return _secret_out(status)
