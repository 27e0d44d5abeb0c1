"""Settings: the user's mailboxes and their sending limits, and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request

from cadenza.domain.errors import CadenzaError
from cadenza.services import mailboxes
from cadenza.services.context import Context
from cadenza.services.users import create_token
from cadenza.store.models import User
from cadenza.web.auth import get_ctx, is_admin
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import check_csrf, signed_in_user, ui_writer

router = APIRouter(dependencies=[Depends(check_csrf)])


def _page(request: Request, ctx: Context, user: User, status_code: int = 200, **extra):
    context = {"new_token": None, "errors": {}, **extra}
    return render(
        request,
        "settings.html",
        status_code=status_code,
        mailboxes=mailboxes.list_mailboxes(ctx, owner_id=None if is_admin(user) else user.id),
        **context,
    )


@router.get("/settings")
def settings_page(
    request: Request, user: User = Depends(signed_in_user), ctx: Context = Depends(get_ctx)
):
    return _page(request, ctx, user)


@router.post("/settings/mailboxes/{mailbox_id}/limits")
def mailbox_limits(
    request: Request,
    mailbox_id: int = Path(ge=1, le=MAX_ID),
    per_minute_limit: str = Form(""),
    daily_limit: str = Form(""),
    user: User = Depends(ui_writer),
    ctx: Context = Depends(get_ctx),
):
    mailbox = mailboxes.get_mailbox(ctx, mailbox_id)
    if mailbox.owner_id != user.id and not is_admin(user):
        return _page(request, ctx, user, 404, errors={mailbox_id: "not your mailbox"})
    try:
        changes = {"per_minute_limit": int(per_minute_limit), "daily_limit": int(daily_limit)}
        mailboxes.update_mailbox(ctx, mailbox_id, changes, actor_id=user.id)
    except ValueError:
        return _page(request, ctx, user, 422, errors={mailbox_id: "limits are whole numbers"})
    except CadenzaError as exc:
        return _page(request, ctx, user, exc.http_status, errors={mailbox_id: exc.message})
    return _page(request, ctx, user)


@router.post("/settings/tokens")
def new_token(
    request: Request,
    name: str = Form("", max_length=100),
    user: User = Depends(signed_in_user),
    ctx: Context = Depends(get_ctx),
):
    if not name.strip():
        return _page(request, ctx, user, 422, errors={"token": "give the token a name"})
    issued = create_token(ctx, user.id, name.strip())
    return _page(request, ctx, user, new_token=issued.token)
