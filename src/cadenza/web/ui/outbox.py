"""The outbox: sent emails and those still waiting, with why each one waits.

An email body is shown in a sandboxed frame (no scripts, no same-origin access) whose
document is served with its own Content-Security-Policy that loads nothing from
anywhere: even a body that slipped past sanitising could neither run nor phone home.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cadenza.domain.enums import MessageStatus, StepWaitReason
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.templates import clean_html
from cadenza.services.delivery import outbox
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)
WAIT_REASONS = {
    None: "due: the engine sends it at the due time",
    StepWaitReason.RATE_LIMIT: "held back by the mailbox's per-minute limit",
    StepWaitReason.DAILY_LIMIT: "held back by the mailbox's 24-hour limit",
    StepWaitReason.SEND_WINDOW: "outside the sequence's send window",
    StepWaitReason.MAILBOX_DISCONNECTED: "the mailbox is disconnected: reconnect it in Settings",
    StepWaitReason.RETRY: "a temporary failure: it will be retried",
}


def _index(request: Request, ctx, user, status_code: int = 200, **state):
    return render(
        request,
        "outbox/index.html",
        status_code=status_code,
        messages=outbox.list_messages(ctx, limit=50, actor_id=user.id),
        failed=outbox.list_messages(ctx, status=MessageStatus.FAILED, limit=50, actor_id=user.id),
        waiting=outbox.list_waiting(ctx, limit=50, actor_id=user.id),
        wait_reasons=WAIT_REASONS,
        **{"retried": None, "retry_error": None, **state},
    )


@router.get("/outbox")
def outbox_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
):
    return _index(request, ctx, user)


@router.post("/outbox/retry")
async def retry_messages(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    """Failed emails chosen on the outbox (or one message's page), sent again with the
    reason given; the page lists what went and what was refused, and why."""
    form = await request.form()
    chosen = [str(v) for v in form.getlist("message")]
    ids = [int(v) for v in chosen if v.isdigit() and 0 < int(v) <= MAX_ID]
    try:
        outcomes = outbox.retry_messages(
            ctx, ids, reason=str(form.get("reason", "")), actor_id=user.id
        )
    except CadenzaError as exc:
        return _index(request, ctx, user, 422, retry_error=exc.message)
    return _index(request, ctx, user, retried=outcomes)


@router.get("/outbox/{message_id}")
def message_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    message_id: int = Path(ge=1, le=MAX_ID),
):
    return render(
        request,
        "outbox/message.html",
        message=outbox.get_message(ctx, message_id, actor_id=user.id)[0],
    )


@router.post("/outbox/{message_id}/review")
def review_message(
    user: PageWriter,
    ctx: Ctx,
    message_id: int = Path(ge=1, le=MAX_ID),
    delivered: str = Form(""),
):
    """A send whose outcome is unknown: a person says whether it arrived (never guessed)."""
    if delivered not in ("yes", "no"):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "say whether the email was delivered")
    outbox.resolve_unknown(ctx, message_id, delivered=delivered == "yes", actor_id=user.id)
    return RedirectResponse(f"/outbox/{message_id}", status_code=303)


@router.get("/outbox/{message_id}/body")
def message_body(
    user: PageUser,
    ctx: Ctx,
    message_id: int = Path(ge=1, le=MAX_ID),
):
    message, _attempts = outbox.get_message(ctx, message_id, actor_id=user.id)
    page = f"<!doctype html><meta charset='utf-8'><body>{clean_html(message.body_html)}</body>"
    return HTMLResponse(
        page,
        headers={"Content-Security-Policy": FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"},
    )
