"""Settings: mailboxes (add, edit, test the connection, reconnect, limits), users, roles,
deactivation and token revocation (admins), the signed-in user's password, API tokens,
task reminders and daily digest.

Each form posts to its own route and the page comes back with that form's outcome next
to it. An SMTP password is write-only: the page never shows it, and a blank password
field leaves the stored one as it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from cadenza.domain.enums import MailTransport, SmtpSecurity, UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import whole_number
from cadenza.domain.inbound.bookings import BookingProvider
from cadenza.domain.reminders import MAX_MINUTES_BEFORE
from cadenza.engine.transports.base import DeliveryOutcome
from cadenza.services.accounts import mailboxes, profile, users
from cadenza.services.accounts.users import UserView
from cadenza.services.analytics.mailbox_health import mailbox_health
from cadenza.services.context import Context
from cadenza.services.enrollment import reminders
from cadenza.services.oauth import connect as oauth
from cadenza.services.oauth import tokens as oauth_tokens
from cadenza.services.signals import bookings
from cadenza.web.auth import Ctx, is_admin
from cadenza.web.connection_tests import connection_tests
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.forms import FormError
from cadenza.web.ui.outbox import WAIT_REASONS
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import (
    PageAdmin,
    PageUser,
    PageWriter,
    check_csrf,
    session_of,
)

router = APIRouter(dependencies=[Depends(check_csrf)])

MailboxId = Path(ge=1, le=MAX_ID)


def _page(request: Request, ctx: Context, user: UserView, status_code: int = 200, **state: Any):
    boxes = mailboxes.list_mailboxes(ctx, actor_id=user.id)
    return render(
        request,
        "settings.html",
        status_code=status_code,
        mailboxes=boxes,
        no_replies={m.id for m in boxes if mailboxes.misses_replies(m)},
        users=users.list_users(ctx) if is_admin(user) else [],
        tokens=users.list_tokens(ctx, user.id),
        transports=[t.value for t in MailTransport],
        securities=[s.value for s in SmtpSecurity],
        roles=[r.value for r in UserRole],
        oauth_providers=oauth.connectable(ctx),
        prefs=reminders.get_preferences(ctx, user.id, actor_id=user.id),
        max_minutes_before=MAX_MINUTES_BEFORE,
        profile=profile.get_profile(ctx, user.id, user.id),
        booking_secrets=bookings.secret_status(ctx, user.id) if is_admin(user) else [],
        public_url=str(ctx.settings.public_url).rstrip("/"),
        **{"new_token": None, "errors": {}, "notices": {}, **state},
    )


def _refused(request, ctx, user, key: str, exc: CadenzaError | FormError):
    status = exc.http_status if isinstance(exc, CadenzaError) else 422
    return _page(request, ctx, user, status, errors={key: exc.message})


def _whole(form: FormData, name: str, *, required: bool = True) -> int | None:
    text = str(form.get(name, "")).strip()
    if not text and not required:
        return None
    number = whole_number(text)
    if number is None or number > MAX_ID:
        raise FormError(name, f"{name.replace('_', ' ')} must be a whole number")
    return number


def _mailbox_fields(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "from_name": str(form.get("from_name", "")).strip(),
        "transport": str(form.get("transport", "capture")),
        "smtp_host": str(form.get("smtp_host", "")).strip() or None,
        "smtp_port": _whole(form, "smtp_port", required=False),
        "smtp_security": str(form.get("smtp_security", "starttls")),
        "smtp_username": str(form.get("smtp_username", "")).strip() or None,
        "per_minute_limit": _whole(form, "per_minute_limit"),
        "daily_limit": _whole(form, "daily_limit"),
        # The inbox replies arrive in: without a host, replies are not detected.
        "imap_host": str(form.get("imap_host", "")).strip() or None,
        "imap_port": _whole(form, "imap_port", required=False),
        "imap_security": str(form.get("imap_security", "tls")),
        "imap_username": str(form.get("imap_username", "")).strip() or None,
    }
    for password in ("smtp_password", "imap_password"):  # blank: the stored one stays
        if value := str(form.get(password, "")):
            fields[password] = value
    return fields


@router.get("/settings")
def settings_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
):
    return _page(request, ctx, user)


@router.post("/settings/mailboxes")
async def add_mailbox(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    form = await request.form()
    try:
        fields = _mailbox_fields(form)
        mailbox = mailboxes.create_mailbox(
            ctx, user.id, str(form.get("from_email", "")), **fields, actor_id=user.id
        )
    except (CadenzaError, FormError) as exc:
        return _refused(request, ctx, user, "mailbox-new", exc)
    return _page(request, ctx, user, notices={f"mailbox-{mailbox.id}": "Mailbox added."})


@router.post("/settings/mailboxes/{mailbox_id}")
async def edit_mailbox(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    mailbox_id: int = MailboxId,
):
    try:
        fields = _mailbox_fields(await request.form())
        mailboxes.update_mailbox(ctx, mailbox_id, fields, actor_id=user.id)
    except (CadenzaError, FormError) as exc:
        return _refused(request, ctx, user, f"mailbox-{mailbox_id}", exc)
    return _page(request, ctx, user, notices={f"mailbox-{mailbox_id}": "Saved."})


@router.get("/settings/mailboxes/{mailbox_id}")
def mailbox_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    mailbox_id: int = MailboxId,
):
    """The mailbox's health: what the API's /health answers, for the rep who owns it."""
    health = mailbox_health(ctx, mailbox_id, actor_id=user.id)
    return render(request, "settings_mailbox.html", health=health, wait_reasons=WAIT_REASONS)


@router.post("/settings/mailboxes/{mailbox_id}/test")
def test_mailbox(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    mailbox_id: int = MailboxId,
):
    """Logs in with the stored settings and says what the server answered; sends nothing."""
    oauth_tokens.refresh_before_test(ctx, mailbox_id, actor_id=user.id)
    result = connection_tests(request).run(ctx, mailbox_id, user.id)
    key = f"mailbox-{mailbox_id}"
    if result.outcome is DeliveryOutcome.SENT:
        return _page(request, ctx, user, notices={key: f"Connection works: {result.reply}"})
    reply = f"{result.code} {result.reply}" if result.code else result.reply
    return _page(request, ctx, user, errors={key: f"Connection failed: {reply}"})


@router.post("/settings/mailboxes/{mailbox_id}/test-inbox")
def test_inbox(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    mailbox_id: int = MailboxId,
):
    """Logs in to the inbox with the stored settings: whether replies can be read."""
    key = f"mailbox-{mailbox_id}"
    oauth_tokens.refresh_before_test(ctx, mailbox_id, actor_id=user.id)
    try:
        result = connection_tests(request).run_inbox(ctx, mailbox_id, user.id)
    except CadenzaError as exc:
        if exc.code != ErrorCode.VALIDATION_ERROR:
            raise
        return _refused(request, ctx, user, key, exc)
    if result.outcome is DeliveryOutcome.SENT:
        return _page(request, ctx, user, notices={key: f"Inbox works: {result.reply}"})
    return _page(request, ctx, user, errors={key: f"Inbox test failed: {result.reply}"})


@router.post("/settings/mailboxes/{mailbox_id}/reconnect")
def reconnect_mailbox(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    mailbox_id: int = MailboxId,
):
    mailboxes.reconnect_mailbox(ctx, mailbox_id, actor_id=user.id)
    return _page(
        request, ctx, user, notices={f"mailbox-{mailbox_id}": "Reconnected: waiting emails go."}
    )


def oauth_redirect_uri(ctx: Context) -> str:
    """Where providers send the user back: registered as is in each provider's console."""
    return f"{ctx.settings.public_url}/oauth/callback"


@router.get("/settings/mailboxes/oauth/{provider}/start")
def start_oauth(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    provider: str = Path(max_length=40),
):
    """ "Connect Google" and the like: off to the provider, with PKCE and a fresh state."""
    try:
        url = oauth.start_connect(ctx, provider, oauth_redirect_uri(ctx), actor_id=user.id)
    except CadenzaError as exc:
        return _refused(request, ctx, user, "mailbox-new", exc)
    return RedirectResponse(url, status_code=303)


@router.get("/oauth/callback")
def finish_oauth(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
):
    """The provider's redirect back: the state must be this user's own, unused, in time."""
    try:
        mailbox = oauth.finish_connect(
            ctx, state[:200], code and code[:2000], actor_id=user.id, error=error and error[:100]
        )
    except CadenzaError as exc:
        return _refused(request, ctx, user, "mailbox-new", exc)
    notice = f"Connected {mailbox.from_email}: it sends with OAuth 2.0."
    return _page(request, ctx, user, notices={f"mailbox-{mailbox.id}": notice})


@router.post("/settings/users")
async def add_user(
    request: Request,
    admin: PageAdmin,
    ctx: Ctx,
):
    form = await request.form()
    try:
        created = users.create_user(
            ctx,
            str(form.get("email", "")),
            firstname=str(form.get("firstname", "")).strip(),
            lastname=str(form.get("lastname", "")).strip(),
            role=str(form.get("role", "member")),
            timezone=str(form.get("timezone", "")).strip() or None,
            password=str(form.get("password", "")) or None,
            can_enroll=form.get("can_enroll") == "on",
            can_override_enrollment_rules=form.get("can_override_enrollment_rules") == "on",
            actor_id=admin.id,
        )
    except CadenzaError as exc:
        return _refused(request, ctx, admin, "user-new", exc)
    return _page(request, ctx, admin, notices={f"user-{created.id}": "User added."})


@router.post("/settings/users/{user_id}")
async def change_user(
    request: Request,
    admin: PageAdmin,
    ctx: Ctx,
    user_id: int = Path(ge=1, le=MAX_ID),
):
    form = await request.form()
    try:
        users.update_user(
            ctx,
            user_id,
            role=str(form.get("role", "")),
            can_enroll=form.get("can_enroll") == "on",
            can_override_enrollment_rules=form.get("can_override_enrollment_rules") == "on",
            actor_id=admin.id,
        )
    except CadenzaError as exc:
        return _refused(request, ctx, admin, f"user-{user_id}", exc)
    return _page(request, ctx, admin, notices={f"user-{user_id}": "Saved."})


@router.post("/settings/users/{user_id}/active")
async def activate_user(
    request: Request,
    admin: PageAdmin,
    ctx: Ctx,
    user_id: int = Path(ge=1, le=MAX_ID),
):
    """Deactivate (no sign-in, no token, sessions ended) or reactivate a user."""
    active = (await request.form()).get("active") == "yes"
    try:
        users.set_active(ctx, user_id, active, actor_id=admin.id)
    except CadenzaError as exc:
        return _refused(request, ctx, admin, f"user-{user_id}", exc)
    notice = "Reactivated." if active else "Deactivated: signed out everywhere."
    return _page(request, ctx, admin, notices={f"user-{user_id}": notice})


@router.post("/settings/users/{user_id}/revoke-tokens")
def revoke_user_tokens(
    request: Request,
    admin: PageAdmin,
    ctx: Ctx,
    user_id: int = Path(ge=1, le=MAX_ID),
):
    revoked = users.revoke_all_tokens(ctx, user_id, actor_id=admin.id)
    return _page(request, ctx, admin, notices={f"user-{user_id}": f"{revoked} token(s) revoked."})


@router.post("/settings/password")
async def change_password(request: Request, user: PageUser, ctx: Ctx):
    """Ends every other session; this one is signed in again with the new password."""
    form = await request.form()
    new = str(form.get("new_password", ""))
    try:
        if new != str(form.get("confirm_password", "")):
            raise FormError("confirm_password", "the two new passwords differ")
        changed = users.change_password(
            ctx, user.id, new, current_password=str(form.get("current_password", "")),
            actor_id=user.id,
        )  # fmt: skip
    except (CadenzaError, FormError) as exc:
        return _refused(request, ctx, user, "password", exc)
    session_of(request).sign_in(changed)
    return _page(request, ctx, changed, notices={"password": "Password changed."})


@router.post("/settings/preferences")
async def change_preferences(request: Request, user: PageUser, ctx: Ctx):
    """One's own reminder timing and daily digest (viewers too)."""
    form = await request.form()
    try:
        changes = {
            "timing": str(form.get("timing", "")),
            "minutes_before": _whole(form, "minutes_before", required=False) or 0,
            "digest": form.get("digest") == "on",
            "digest_hour": _whole(form, "digest_hour"),
        }
        reminders.update_preferences(ctx, user.id, changes, actor_id=user.id)
    except (CadenzaError, FormError) as exc:
        return _refused(request, ctx, user, "preferences", exc)
    return _page(request, ctx, user, notices={"preferences": "Reminders saved."})


@router.post("/settings/tokens")
async def new_token(
    request: Request,
    user: PageUser,
    ctx: Ctx,
):
    name = str((await request.form()).get("name", "")).strip()
    if not name or len(name) > 100:
        error = FormError("name", "give the token a name of at most 100 characters")
        return _refused(request, ctx, user, "token", error)
    issued = users.create_token(ctx, user.id, name)
    page = _page(request, ctx, user, new_token=issued.token)
    page.headers["Cache-Control"] = "no-store"  # the token must not stay in any cache
    return page


@router.post("/settings/tokens/{token_id}/revoke")
def revoke(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    token_id: int = Path(ge=1, le=MAX_ID),
):
    users.revoke_token(ctx, user.id, token_id, actor_id=user.id)
    return _page(request, ctx, user, notices={"token": "Token revoked."})


@router.post("/settings/profile")
async def save_profile(request: Request, user: PageUser, ctx: Ctx):
    """The signed-in user's signature and meeting link (docs/content.md)."""
    form = await request.form()
    changes = {name: str(form.get(name, "")) for name in profile.FIELDS}
    try:
        profile.update_profile(ctx, user.id, user.id, changes)
    except CadenzaError as exc:
        return _refused(request, ctx, user, "profile", exc)
    return _page(request, ctx, user, notices={"profile": "Signature and meeting link saved."})


@router.post("/settings/booking-webhooks/{provider}")
async def save_booking_secret(
    request: Request, provider: BookingProvider, admin: PageAdmin, ctx: Ctx
):
    """Sets (or, with `clear`, forgets) the secret a scheduler signs its bookings with."""
    form = await request.form()
    key = f"booking-{provider}"
    try:
        if form.get("clear"):
            bookings.clear_secret(ctx, admin.id, provider)
            notice = "Secret removed: bookings from it are refused until one is set."
        else:
            bookings.set_secret(ctx, admin.id, provider, str(form.get("secret", "")))
            notice = "Secret saved. It is not shown again."
    except CadenzaError as exc:
        return _refused(request, ctx, admin, key, exc)
    return _page(request, ctx, admin, notices={key: notice})
