"""Messages: the outbox — what was sent, with every delivery attempt — and review of unknown sends.

A message belongs to whoever owns the mailbox it leaves from: members and viewers see
the messages of their own mailboxes only (someone else's answers 404, like a missing
one); admins see all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.enums import MessageStatus
from cadenza.services.delivery import outbox
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged

router = APIRouter(tags=["messages"])


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enrollment_id: int | None
    contact_id: int | None
    mailbox_id: int
    message_id: str = Field(description="The Message-ID header, fixed before the first attempt")
    in_reply_to: str | None
    from_email: str
    to_email: str
    subject: str
    body_html: str
    body_text: str
    status: MessageStatus
    smtp_reply: str | None
    handed_at: datetime | None
    sent_at: datetime | None
    created_at: datetime
    variant: str | None = Field(None, description="The A/B variant of its step it carries")


class MessagePage(BaseModel):
    results: list[MessageOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    outcome: str
    code: int | None
    reply: str | None
    at: datetime


class MessageDetail(MessageOut):
    attempts: list[AttemptOut]
    raw: str | None = Field(description="The full MIME text, exactly as handed over")


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: a decision that resends or settles an email must not be read from "no" or 0.
    delivered: bool = Field(strict=True, description="Did the recipient's server accept it?")


@router.get("/messages", response_model=MessagePage, responses=error_responses(401, 422))
def list_messages(
    user: ApiUser,
    ctx: Ctx,
    enrollment_id: int | None = Query(None, ge=1, le=MAX_ID),
    status: MessageStatus | None = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first; members see the messages of their own mailboxes."""
    found = outbox.list_messages(
        ctx,
        status=status,
        enrollment_id=enrollment_id,
        actor_id=user.id,
        limit=limit + 1,
        after_id=after_id(cursor),
    )
    return paged(found, limit, MessageOut.model_validate)


@router.get(
    "/messages/{message_id}",
    response_model=MessageDetail,
    responses=error_responses(401, 404, 422),
)
def get_message(
    user: ApiUser,
    ctx: Ctx,
    message_id: int = Path(ge=1, le=MAX_ID),
) -> MessageDetail:
    """With every delivery attempt and the raw MIME text: what a support question needs."""
    message, attempts = outbox.get_message(ctx, message_id, actor_id=user.id)
    return MessageDetail(
        **MessageOut.model_validate(message).model_dump(),
        attempts=[AttemptOut.model_validate(a) for a in attempts],
        raw=message.raw,
    )


@router.post(
    "/messages/{message_id}/review",
    response_model=MessageOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def review_message(
    body: Review,
    user: ApiWriter,
    ctx: Ctx,
    message_id: int = Path(ge=1, le=MAX_ID),
) -> MessageOut:
    """The engine never guesses whether an interrupted send arrived: a person settles it.

    Delivered: the step counts as sent and the sequence goes on. Not delivered: the same
    message, with the same Message-ID, is queued to go again.
    """
    message = outbox.resolve_unknown(ctx, message_id, delivered=body.delivered, actor_id=user.id)
    return MessageOut.model_validate(message)


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1, max_length=outbox.RETRY_LIMIT
    )
    reason: str = Field(min_length=1, max_length=500, description="Kept in the audit log.")
    # Strict, like a review: sending an unknown email again must not be read from "yes".
    confirm_not_delivered: bool = Field(
        False, strict=True, description="Required to resend an unknown send: it was not delivered."
    )


class RetryResultOut(BaseModel):
    message_id: int
    ok: bool
    code: str | None
    message: str | None


class RetryOut(BaseModel):
    results: list[RetryResultOut]


@router.post(
    "/messages/retry",
    response_model=RetryOut,
    responses=error_responses(401, 403, 422),
)
def retry_messages(body: RetryIn, user: ApiWriter, ctx: Ctx) -> RetryOut:
    """Send failed or unknown steps again, each on its own: the same message (same
    Message-ID), due now, one more try. A failed step's enrollment goes on if the contact
    may still be emailed; an unknown send goes again only with `confirm_not_delivered`.
    Each result says `ok`, or why not (`code`, `message`); someone else's message
    answers `not_found`."""
    outcomes = outbox.retry_messages(
        ctx,
        body.message_ids,
        reason=body.reason,
        confirm_not_delivered=body.confirm_not_delivered,
        actor_id=user.id,
    )
    return RetryOut(results=[RetryResultOut(**vars(o)) for o in outcomes])
