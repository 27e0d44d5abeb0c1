"""Mailboxes: connect, list, read, change, delete, test the connection, reconnect.

Members work with their own mailboxes only; someone else's answers as if it did not exist.
Admins manage every mailbox. The SMTP password is write-only: accepted, never returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StrictInt

from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.domain.enums import MailTransport, SmtpSecurity
from cadenza.services.accounts import mailboxes
from cadenza.services.accounts.connection_tests import ConnectionTests
from cadenza.services.accounts.mailboxes import MailboxView
from cadenza.services.analytics.mailbox_health import mailbox_health
from cadenza.services.oauth import connect as oauth
from cadenza.services.oauth import tokens as oauth_tokens
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.connection_tests import connection_tests
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import page

router = APIRouter(tags=["mailboxes"])

# Column sizes: a longer value must be a 422 here, not a database error later.
_EMAIL_MAX, _NAME_MAX, _HOST_MAX, _PASSWORD_MAX = 320, 200, 255, 500
_PASSWORD_DOC = "Write-only: stored for the worker to log in with, never returned."
_PER_MINUTE_DOC = f"Emails per minute, 1 to {mailboxes.MAX_PER_MINUTE}."
_DAILY_DOC = f"Emails per rolling day, 1 to {mailboxes.MAX_DAILY}."
_IMAP_DOC = "Where replies and bounces arrive: the inbox poller reads it (optional)."
MailboxId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _no_nul(password: SecretStr | None) -> SecretStr | None:
    """SecretStr takes no `pattern`; the message must not quote the value either."""
    if password is not None and "\x00" in password.get_secret_value():
        raise ValueError("must not contain NUL characters")
    return password


Password = Annotated[
    SecretStr | None,
    Field(max_length=_PASSWORD_MAX, description=_PASSWORD_DOC),
    AfterValidator(_no_nul),
]


class MailboxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_email: str = Field(max_length=_EMAIL_MAX)
    from_name: str = Field("", max_length=_NAME_MAX, pattern=NO_NUL)
    transport: MailTransport = MailTransport.CAPTURE
    smtp_host: str | None = Field(None, max_length=_HOST_MAX, pattern=NO_NUL)
    smtp_port: StrictInt | None = Field(None, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_username: str | None = Field(None, max_length=_EMAIL_MAX, pattern=NO_NUL)
    smtp_password: Password = None
    per_minute_limit: StrictInt = Field(10, description=_PER_MINUTE_DOC)
    daily_limit: StrictInt = Field(1000, description=_DAILY_DOC)
    imap_host: str | None = Field(None, max_length=_HOST_MAX, pattern=NO_NUL, description=_IMAP_DOC)
    imap_port: StrictInt | None = Field(None, ge=1, le=65535)
    imap_security: SmtpSecurity = SmtpSecurity.TLS
    imap_username: str | None = Field(None, max_length=_EMAIL_MAX, pattern=NO_NUL)
    imap_password: Password = None
    owner_id: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="Admins only: create the mailbox for this user (default: yourself).",
    )


class MailboxPatch(BaseModel):
    """Only the fields sent change; null clears an optional field (not a required one)."""

    model_config = ConfigDict(extra="forbid")

    from_email: str | None = Field(None, max_length=_EMAIL_MAX)
    from_name: str | None = Field(None, max_length=_NAME_MAX, pattern=NO_NUL)
    transport: MailTransport | None = None
    smtp_host: str | None = Field(None, max_length=_HOST_MAX, pattern=NO_NUL)
    smtp_port: StrictInt | None = Field(None, ge=1, le=65535)
    smtp_security: SmtpSecurity | None = None
    smtp_username: str | None = Field(None, max_length=_EMAIL_MAX, pattern=NO_NUL)
    smtp_password: Password = None
    per_minute_limit: StrictInt | None = Field(None, description=_PER_MINUTE_DOC)
    daily_limit: StrictInt | None = Field(None, description=_DAILY_DOC)
    imap_host: str | None = Field(None, max_length=_HOST_MAX, pattern=NO_NUL, description=_IMAP_DOC)
    imap_port: StrictInt | None = Field(None, ge=1, le=65535)
    imap_security: SmtpSecurity | None = None
    imap_username: str | None = Field(None, max_length=_EMAIL_MAX, pattern=NO_NUL)
    imap_password: Password = None


class ReconnectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smtp_password: Password = None


class MailboxOut(BaseModel):
    id: int
    owner_id: int
    from_email: str
    from_name: str
    transport: str
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str
    smtp_username: str | None
    has_password: bool
    imap_host: str | None
    imap_port: int | None
    imap_security: str
    imap_username: str | None
    has_imap_password: bool
    per_minute_limit: int
    daily_limit: int
    connected: bool
    disconnected_reason: str | None
    # password, or oauth2 (connected through a provider; its tokens are never returned)
    auth_method: str
    oauth_provider: str | None
    created_at: datetime


class MailboxPage(BaseModel):
    results: list[MailboxOut]
    next_cursor: str | None


class CheckOut(BaseModel):
    ok: bool
    code: int | None
    reply: str


def mailbox_out(mailbox: MailboxView) -> MailboxOut:
    return MailboxOut(
        id=mailbox.id,
        owner_id=mailbox.owner_id,
        from_email=mailbox.from_email,
        from_name=mailbox.from_name,
        transport=mailbox.transport,
        smtp_host=mailbox.smtp_host,
        smtp_port=mailbox.smtp_port,
        smtp_security=mailbox.smtp_security,
        smtp_username=mailbox.smtp_username,
        has_password=bool(mailbox.smtp_password),
        imap_host=mailbox.imap_host,
        imap_port=mailbox.imap_port,
        imap_security=mailbox.imap_security,
        imap_username=mailbox.imap_username,
        has_imap_password=bool(mailbox.imap_password),
        per_minute_limit=mailbox.per_minute_limit,
        daily_limit=mailbox.daily_limit,
        connected=mailbox.connected,
        disconnected_reason=mailbox.disconnected_reason,
        auth_method=mailbox.auth_method,
        oauth_provider=mailbox.oauth_provider,
        created_at=mailbox.created_at,
    )


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Passwords stay wrapped in SecretStr up to here, so no repr or log of them leaks."""
    for field in ("smtp_password", "imap_password"):
        password = data.get(field)
        if isinstance(password, SecretStr):
            data[field] = password.get_secret_value()
    return data


@router.post(
    "/mailboxes",
    status_code=201,
    response_model=MailboxOut,
    responses=error_responses(401, 403, 404, 422),
)
def create_mailbox(
    body: MailboxIn,
    user: ApiWriter,
    ctx: Ctx,
) -> MailboxOut:
    owner_id = user.id if body.owner_id is None else body.owner_id
    data = _plain(body.model_dump(exclude={"owner_id"}))
    return mailbox_out(mailboxes.create_mailbox(ctx, owner_id, **data, actor_id=user.id))


@router.get("/mailboxes", response_model=MailboxPage, responses=error_responses(401))
def list_mailboxes(
    user: ApiUser,
    ctx: Ctx,
) -> dict[str, Any]:
    return page([mailbox_out(m) for m in mailboxes.list_mailboxes(ctx, actor_id=user.id)], None)


@router.get(
    "/mailboxes/{mailbox_id}",
    response_model=MailboxOut,
    responses=error_responses(401, 404, 422),
)
def get_mailbox(
    mailbox_id: MailboxId,
    user: ApiUser,
    ctx: Ctx,
) -> MailboxOut:
    return mailbox_out(mailboxes.get_mailbox(ctx, mailbox_id, actor_id=user.id))


class InboxFolderOut(BaseModel):
    folder: str
    polled_at: datetime
    last_error: str | None = Field(description="None: the last poll went well.")


class LastErrorOut(BaseModel):
    message_id: int
    outcome: DeliveryOutcome
    code: int | None
    reply: str | None = Field(description="The server's answer (a redacted excerpt).")
    at: datetime


class MailboxHealthOut(BaseModel):
    mailbox: MailboxOut
    detects_replies: bool = Field(
        description="False: no inbox is read, so a reply does not stop its sequences."
    )
    misses_replies: bool = Field(
        description="True for an SMTP mailbox that does not detect replies: enrolling warns."
    )
    last_sent_at: datetime | None
    last_error: LastErrorOut | None
    inbox: list[InboxFolderOut] = Field(description="The inbox poller's last visit per folder.")
    sent_last_minute: int
    sent_last_24h: int = Field(description="What the daily limit counts (in flight included).")
    per_minute_limit: int
    daily_limit: int
    due_now: int = Field(description="Due emails with nothing holding them back.")
    waiting: dict[str, int] = Field(description="Emails held back, by reason.")
    needs_review: int = Field(description="Messages whose delivery is unknown.")
    signals: dict[str, int] = Field(description="Replies, bounces, auto-replies seen lately.")
    signal_days: int
    checked_at: datetime


@router.get(
    "/mailboxes/{mailbox_id}/health",
    response_model=MailboxHealthOut,
    responses=error_responses(401, 404, 422),
)
def get_mailbox_health(
    mailbox_id: MailboxId,
    user: ApiUser,
    ctx: Ctx,
) -> MailboxHealthOut:
    """Connected or not and why, last send, last inbox poll, last error, use of the
    limits, what waits and why, and the signals seen in the last days."""
    health = mailbox_health(ctx, mailbox_id, actor_id=user.id)
    return MailboxHealthOut(
        mailbox=mailbox_out(health.mailbox),
        detects_replies=health.detects_replies,
        misses_replies=health.misses_replies,
        last_sent_at=health.last_sent_at,
        last_error=None if health.last_error is None else LastErrorOut(**vars(health.last_error)),
        inbox=[InboxFolderOut(**vars(folder)) for folder in health.inbox],
        sent_last_minute=health.sent_last_minute,
        sent_last_24h=health.sent_last_24h,
        per_minute_limit=health.mailbox.per_minute_limit,
        daily_limit=health.mailbox.daily_limit,
        due_now=health.due_now,
        waiting=health.waiting,
        needs_review=health.needs_review,
        signals=health.signals,
        signal_days=health.signal_days,
        checked_at=health.checked_at,
    )


@router.patch(
    "/mailboxes/{mailbox_id}",
    response_model=MailboxOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_mailbox(
    mailbox_id: MailboxId,
    body: MailboxPatch,
    user: ApiWriter,
    ctx: Ctx,
) -> MailboxOut:
    """Changing how it connects (host, port, security, credentials) marks it connected again."""
    changes = _plain(body.model_dump(exclude_unset=True))
    return mailbox_out(mailboxes.update_mailbox(ctx, mailbox_id, changes, user.id))


@router.delete(
    "/mailboxes/{mailbox_id}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422),
)
def delete_mailbox(
    mailbox_id: MailboxId,
    user: ApiWriter,
    ctx: Ctx,
) -> None:
    """Refused (409) while enrollments send from it, or once it has sending history."""
    mailboxes.delete_mailbox(ctx, mailbox_id, user.id)


@router.post(
    "/mailboxes/{mailbox_id}/test",
    response_model=CheckOut,
    responses=error_responses(401, 403, 404, 422, 429),
)
def check_connection(
    mailbox_id: MailboxId,
    user: ApiWriter,
    ctx: Ctx,
    tests: ConnectionTests = Depends(connection_tests),
) -> CheckOut:
    """Logs in with the stored settings and says what the server answered; sends nothing.

    The mailbox is left as it is, connected or not: a passing test is a reason to
    reconnect, and a failing one is not yet a reason to stop its emails. Tests time out
    after 5 seconds, run at most 4 at once and 6 a minute per user (429 beyond).
    """
    oauth_tokens.refresh_before_test(ctx, mailbox_id, actor_id=user.id)
    result = tests.run(ctx, mailbox_id, user.id)
    return CheckOut(ok=result.outcome is DeliveryOutcome.SENT, code=result.code, reply=result.reply)


@router.post(
    "/mailboxes/{mailbox_id}/test-inbox",
    response_model=CheckOut,
    responses=error_responses(401, 403, 404, 422, 429),
)
def check_inbox(
    mailbox_id: MailboxId,
    user: ApiWriter,
    ctx: Ctx,
    tests: ConnectionTests = Depends(connection_tests),
) -> CheckOut:
    """Logs in to the mailbox's inbox (IMAP) with the stored settings and out again;
    reads nothing. `ok`: replies can be read. 422 when the mailbox has no inbox; the
    same brakes as the SMTP test (429 beyond)."""
    oauth_tokens.refresh_before_test(ctx, mailbox_id, actor_id=user.id)
    result = tests.run_inbox(ctx, mailbox_id, user.id)
    return CheckOut(ok=result.outcome is DeliveryOutcome.SENT, code=result.code, reply=result.reply)


@router.post(
    "/mailboxes/{mailbox_id}/reconnect",
    response_model=MailboxOut,
    responses=error_responses(401, 403, 404, 422),
)
def reconnect_mailbox(
    mailbox_id: MailboxId,
    user: ApiWriter,
    ctx: Ctx,
    body: ReconnectIn | None = None,
) -> MailboxOut:
    """Marks it connected again, with a new password if one is sent; waiting emails go out."""
    password = body.smtp_password if body is not None else None
    mailbox = mailboxes.reconnect_mailbox(
        ctx,
        mailbox_id,
        smtp_password=None if password is None else password.get_secret_value(),
        actor_id=user.id,
    )
    return mailbox_out(mailbox)


# -- OAuth 2.0 mailboxes (docs/mailboxes.md) ---------------------------------------


class OAuthStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redirect_uri: str | None = Field(
        None,
        max_length=500,
        pattern=r"^https?://[^\s\x00]+$",
        description="As registered in the provider's console; default "
        "CADENZA_PUBLIC_URL/oauth/callback (the web app's own callback).",
    )


class OAuthStartOut(BaseModel):
    authorization_url: str


class OAuthFinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str = Field(max_length=200, pattern=NO_NUL)
    code: str | None = Field(None, max_length=2000, pattern=NO_NUL)
    error: str | None = Field(None, max_length=100, pattern=NO_NUL)


@router.post(
    "/mailboxes/oauth/{provider}/start",
    response_model=OAuthStartOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def start_oauth(
    provider: Annotated[str, Path(max_length=40)],
    body: OAuthStartIn,
    user: ApiWriter,
    ctx: Ctx,
) -> OAuthStartOut:
    """Where to send the user to connect a mailbox: the provider's authorization URL, with
    PKCE and a state good for this user, once, for a few minutes. 409 while the provider
    is not configured (the message names the settings)."""
    redirect = body.redirect_uri or f"{ctx.settings.public_url}/oauth/callback"
    url = oauth.start_connect(ctx, provider, redirect, actor_id=user.id)
    return OAuthStartOut(authorization_url=url)


@router.post(
    "/mailboxes/oauth/finish",
    response_model=MailboxOut,
    responses=error_responses(401, 403, 409, 422),
)
def finish_oauth(
    body: OAuthFinishIn,
    user: ApiWriter,
    ctx: Ctx,
) -> MailboxOut:
    """What the provider sent back to the redirect URI (state, code, or error): the
    mailbox created or updated for the account that consented, connected."""
    return mailbox_out(
        oauth.finish_connect(ctx, body.state, body.code, actor_id=user.id, error=body.error)
    )
