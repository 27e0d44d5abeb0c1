"""Webhooks out: admins subscribe URLs to event types and read the delivery log.

The signing secret is returned once, by the create call; every other answer says only
whether the webhook has one. Deliveries are signed with HMAC-SHA256 (docs/webhooks.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cadenza.domain import webhooks as rules
from cadenza.domain.enums import WebhookDeliveryStatus, WebhookEvent
from cadenza.services.events_out import webhooks
from cadenza.services.events_out.webhooks import AttemptView, DeliveryView, WebhookView
from cadenza.web.auth import ApiAdmin, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, page

router = APIRouter(tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=MAX_ID)]
_URL_DOC = "An absolute http(s) URL."


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=rules.MAX_URL, pattern=NO_NUL, description=_URL_DOC)
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(rules.EVENT_TYPES))
    description: str = Field("", max_length=200, pattern=NO_NUL)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=rules.MAX_URL, pattern=NO_NUL, description=_URL_DOC)
    events: list[WebhookEvent] | None = Field(None, min_length=1, max_length=len(rules.EVENT_TYPES))
    description: str | None = Field(None, max_length=200, pattern=NO_NUL)
    active: StrictBool | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[WebhookEvent]
    description: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signs every delivery. Shown this once only: keep it.")


class WebhookPage(BaseModel):
    results: list[WebhookOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    results: list[DeliveryOut]
    next_cursor: str | None


def _out(webhook: WebhookView) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "active": webhook.active,
        "created_at": webhook.created_at,
    }


def _delivery_out(delivery: DeliveryView, attempts: list[AttemptView]) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at
        if delivery.status == WebhookDeliveryStatus.PENDING
        else None,
        last_status_code=delivery.last_status_code,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=delivery.payload,
        attempt_log=[
            AttemptOut(at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms)
            for a in attempts
        ],
    )


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses=error_responses(401, 403, 422),
)
def create_webhook(
    body: WebhookIn,
    user: ApiAdmin,
    ctx: Ctx,
) -> dict[str, Any]:
    webhook, secret = webhooks.create_webhook(
        ctx, user.id, body.url, list(body.events), body.description
    )
    return {**_out(webhook), "secret": secret}


@router.get("/webhooks", response_model=WebhookPage, responses=error_responses(401, 403))
def list_webhooks(user: ApiAdmin, ctx: Ctx) -> dict[str, Any]:
    return page([_out(w) for w in webhooks.list_webhooks(ctx)], None)


@router.get(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_webhook(
    webhook_id: WebhookId,
    user: ApiAdmin,
    ctx: Ctx,
) -> dict[str, Any]:
    return _out(webhooks.get_webhook(ctx, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_webhook(
    webhook_id: WebhookId,
    body: WebhookPatch,
    user: ApiAdmin,
    ctx: Ctx,
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for required in ("url", "events", "active", "description"):
        if changes.get(required, "") is None:
            changes.pop(required)  # null means "leave as is" for a field that cannot be empty
    return _out(webhooks.update_webhook(ctx, user.id, webhook_id, changes))


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, responses=error_responses(401, 403, 404, 422)
)
def delete_webhook(
    webhook_id: WebhookId,
    user: ApiAdmin,
    ctx: Ctx,
) -> None:
    webhooks.delete_webhook(ctx, user.id, webhook_id)


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 422),
)
def test_webhook(
    webhook_id: WebhookId,
    user: ApiAdmin,
    ctx: Ctx,
) -> DeliveryOut:
    """Queues a `ping` delivery; the dispatcher sends it within a second or so."""
    return _delivery_out(webhooks.send_test(ctx, webhook_id), [])


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 403, 404, 422),
)
def list_deliveries(
    webhook_id: WebhookId,
    user: ApiAdmin,
    ctx: Ctx,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first, each with every attempt: time, the receiver's status code or the error."""
    rows = webhooks.list_deliveries(ctx, webhook_id, limit=limit + 1, before=after_id(cursor))
    more = len(rows) > limit
    rows = rows[:limit]
    return page([_delivery_out(d, a) for d, a in rows], rows[-1][0].id if more else None)
