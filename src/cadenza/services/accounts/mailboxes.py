"""Sending mailboxes: connect, limit, change, test-ready settings, remove."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import normalize_email
from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, MailboxAuth, MailTransport, SmtpSecurity
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.transport_settings import (
    SMTP_TIMEOUT_SECONDS,
    CaptureSettings,
    SmtpSettings,
    TransportSettings,
)
from cadenza.services.access import authorize, owner_filter
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.accounts.mailbox_hosts import check_hosts
from cadenza.services.accounts.users import get_user
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import Enrollment, Mailbox, Message, StepRun

log = logging.getLogger("cadenza.mailboxes")

# Defaults follow HubSpot (10 per minute, 1,000 per rolling day); a self-hosted relay
# may allow far more, so the ceilings are high and the choice is the admin's.
MAX_PER_MINUTE = 100_000
MAX_DAILY = 10_000_000


@dataclass(frozen=True)
class MailboxView:
    """A mailbox's settings as stored. The two passwords are the sealed values (never
    the clear ones; `smtp_password()` opens them for a transport): the API and the pages
    only say whether one is set."""

    id: int
    owner_id: int
    from_email: str
    from_name: str
    transport: str
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str
    smtp_username: str | None
    smtp_password: str | None
    imap_host: str | None
    imap_port: int | None
    imap_security: str
    imap_username: str | None
    imap_password: str | None
    per_minute_limit: int
    daily_limit: int
    # password, or oauth2 (services/oauth): the tokens stay on the row, never in a view.
    auth_method: str
    oauth_provider: str | None
    connected: bool
    disconnected_reason: str | None
    next_send_at: datetime | None
    last_handed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Mailbox) -> MailboxView:
        return copy_row(cls, row)


def misses_replies(mailbox: Mailbox | MailboxView) -> bool:
    """An SMTP mailbox whose inbox nobody reads: a contact's reply does not stop their
    sequence, so follow-ups keep going. The pages mark it and enrolling through it warns.
    A capture mailbox sends nothing real, so nobody can reply to it."""
    return mailbox.transport == MailTransport.SMTP and mailbox.imap_host is None


# `misses_replies` as a query condition, for reads over many mailboxes at once.
MISSES_REPLIES = (Mailbox.transport == MailTransport.SMTP) & Mailbox.imap_host.is_(None)


def check_limits(per_minute_limit: int, daily_limit: int) -> None:
    if not 1 <= per_minute_limit <= MAX_PER_MINUTE:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"per_minute_limit must be from 1 to {MAX_PER_MINUTE}"
        )
    if not 1 <= daily_limit <= MAX_DAILY:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"daily_limit must be from 1 to {MAX_DAILY}")


def create_mailbox(
    ctx: Context,
    owner_id: int,
    from_email: str,
    *,
    from_name: str = "",
    transport: str = MailTransport.CAPTURE,
    smtp_host: str | None = None,
    smtp_port: int | None = None,
    smtp_security: str = SmtpSecurity.STARTTLS,
    smtp_username: str | None = None,
    smtp_password: str | None = None,
    per_minute_limit: int = 10,
    daily_limit: int = 1000,
    imap_host: str | None = None,
    imap_port: int | None = None,
    imap_security: str = SmtpSecurity.TLS,
    imap_username: str | None = None,
    imap_password: str | None = None,
    actor_id: int | None = None,
) -> MailboxView:
    """`actor_id`: who adds it, if not its owner (only an admin adds one for someone else)."""
    address = normalize_email(from_email)
    try:
        transport = MailTransport(transport)
        smtp_security = SmtpSecurity(smtp_security)
        imap_security = SmtpSecurity(imap_security)
    except ValueError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    if transport is MailTransport.SMTP and not smtp_host:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "an smtp mailbox needs smtp_host")
    check_limits(per_minute_limit, daily_limit)
    check_plain_auth(ctx, smtp_host, str(smtp_security), smtp_username, smtp_password)
    check_plain_auth(ctx, imap_host, str(imap_security), imap_username, imap_password)
    with ctx.db.transaction() as session:
        get_user(session, owner_id)
        authorize(session, actor_id, Resource.MAILBOX, Action.CREATE, [owner_id])
        hosts = {"smtp_host": smtp_host, "imap_host": imap_host}
        check_hosts(ctx, session, actor_id, hosts)  # None: a trusted caller (CLI, engine)
        mailbox = Mailbox(
            owner_id=owner_id,
            from_email=address,
            from_name=from_name,
            transport=str(transport),
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            smtp_security=str(smtp_security),
            smtp_username=smtp_username,
            smtp_password=seal(ctx, smtp_password, Mailbox, "smtp_password"),
            per_minute_limit=per_minute_limit,
            daily_limit=daily_limit,
            imap_host=imap_host,
            imap_port=imap_port,
            imap_security=str(imap_security),
            imap_username=imap_username,
            imap_password=seal(ctx, imap_password, Mailbox, "imap_password"),
            connected=True,
            created_at=ctx.clock.now(),
        )
        session.add(mailbox)
        session.flush()
        who = owner_id if actor_id is None else actor_id
        record(session, ctx, who, "mailbox.create", "mailbox", mailbox.id, {"from": address})
    return MailboxView.of(mailbox)


def list_mailboxes(
    ctx: Context, owner_id: int | None = None, *, actor_id: int | None = None
) -> list[MailboxView]:
    """A member acting sees only their own mailboxes; an admin everyone's."""
    with ctx.db.read() as session:
        query = select(Mailbox).order_by(Mailbox.id)
        for owner in (owner_id, owner_filter(session, actor_id, Resource.MAILBOX)):
            if owner is not None:
                query = query.where(Mailbox.owner_id == owner)
        return [MailboxView.of(row) for row in session.scalars(query)]


def disconnected_mailboxes(ctx: Context, owner_id: int) -> list[MailboxView]:
    """The owner's mailboxes that wait for them (the banner every page shows): one small
    indexed read per page."""
    with ctx.db.read() as session:
        query = (
            select(Mailbox)
            .where(Mailbox.owner_id == owner_id, Mailbox.connected.is_(False))
            .order_by(Mailbox.id)
        )
        return [MailboxView.of(row) for row in session.scalars(query)]


def mailboxes_with_imap(ctx: Context) -> list[Mailbox]:
    """The mailboxes whose inbox the poller reads: those with an IMAP host."""
    with ctx.db.read() as session:
        query = select(Mailbox).where(Mailbox.imap_host.is_not(None)).order_by(Mailbox.id)
        return list(session.scalars(query))


def authorize_mailbox(
    session: Session, actor_id: int | None, mailbox: Mailbox, action: Action
) -> None:
    """Someone else's mailbox answers exactly as a missing one: ids reveal nothing."""
    hidden = CadenzaError(
        ErrorCode.MAILBOX_NOT_FOUND, f"mailbox {mailbox.id} does not exist", {"id": mailbox.id}
    )
    authorize(session, actor_id, Resource.MAILBOX, action, [mailbox.owner_id], hidden_as=hidden)


def get_mailbox(ctx: Context, mailbox_id: int, *, actor_id: int | None = None) -> MailboxView:
    with ctx.db.read() as session:
        mailbox = fetch(session, Mailbox, mailbox_id)
        authorize_mailbox(session, actor_id, mailbox, Action.READ)
        return MailboxView.of(mailbox)


def reconnect_mailbox(
    ctx: Context, mailbox_id: int, *, smtp_password: str | None = None, actor_id: int | None = None
) -> MailboxView:
    """Marks a mailbox connected again (after fixing its credentials); its waiting emails go."""
    with ctx.db.transaction() as session:
        mailbox = fetch(session, Mailbox, mailbox_id, for_update=True)
        authorize_mailbox(session, actor_id, mailbox, Action.UPDATE)
        if smtp_password is not None:
            check_plain_auth(
                ctx, mailbox.smtp_host, mailbox.smtp_security, mailbox.smtp_username, smtp_password
            )
            mailbox.smtp_password = seal(ctx, smtp_password, Mailbox, "smtp_password")
        mailbox.connected, mailbox.disconnected_reason = True, None
        record(session, ctx, actor_id, "mailbox.reconnect", "mailbox", mailbox_id)
    return MailboxView.of(mailbox)


def smtp_password(ctx: Context, mailbox: Mailbox | MailboxView) -> str | None:
    """The clear SMTP password, for the transport only: stored sealed, never returned.
    None for an unencrypted connection to a host not allowed one (a mailbox saved before
    that rule, or since the allow-list shrank): the server then refuses the login,
    which is better than the password crossing the network in clear. No stored password
    is no warning: the worker reads this on every tick (transport_settings), and a relay
    without a login on the local network is a setup, not a mistake to log each second."""
    if not mailbox.smtp_password:
        return None
    if not _may_log_in(ctx, mailbox.smtp_host, mailbox.smtp_security, mailbox.id):
        return None
    return open_sealed(ctx, mailbox.smtp_password, Mailbox, "smtp_password")


def transport_settings(
    ctx: Context,
    mailbox_id: int,
    *,
    actor_id: int | None = None,
    timeout: float = SMTP_TIMEOUT_SECONDS,
) -> TransportSettings:
    """What a transport needs to send from this mailbox, as a plain frozen value.

    The engine's transports never read the stored row: this is the one place that turns
    a mailbox into connection settings (the port its security implies when none is set,
    the password opened as smtp_password allows). Equal values mean the same connection,
    which is how a worker knows its open session still fits. `actor_id` reads it as that
    user (someone else's mailbox answers as missing); None is a trusted caller.
    """
    mailbox = get_mailbox(ctx, mailbox_id, actor_id=actor_id)
    return _settings_of(ctx, mailbox, timeout)


def transport_settings_of(
    ctx: Context, mailbox_ids: Collection[int]
) -> dict[int, TransportSettings]:
    """transport_settings of several mailboxes (a trusted caller: the worker), read in
    one statement: the worker asks for every mailbox it has just claimed emails of."""
    with ctx.db.read() as session:
        views = [
            MailboxView.of(mailbox)
            for mailbox in session.scalars(select(Mailbox).where(Mailbox.id.in_(mailbox_ids)))
        ]
    return {view.id: _settings_of(ctx, view, SMTP_TIMEOUT_SECONDS) for view in views}


def _settings_of(ctx: Context, mailbox: MailboxView, timeout: float) -> TransportSettings:
    if mailbox.transport == MailTransport.CAPTURE:
        return CaptureSettings()
    security = mailbox.smtp_security
    oauth = mailbox.auth_method == MailboxAuth.OAUTH2
    return SmtpSettings(
        host=mailbox.smtp_host or "",
        port=mailbox.smtp_port or (465 if security == SmtpSecurity.TLS else 587),
        security=security,
        username=mailbox.smtp_username,
        password=None if oauth else smtp_password(ctx, mailbox),
        timeout=timeout,
        xoauth2=oauth,
        oauth_token=oauth_access_token(ctx, mailbox.id) if oauth else None,
    )


def oauth_access_token(ctx: Context, mailbox_id: int, *, imap: bool = False) -> str | None:
    """The clear access token of an OAuth mailbox, for a transport only (services/oauth
    renews it before it expires). None when disconnected, or when the connection would
    carry it unencrypted to a host not allowed a plain login (like a password)."""
    with ctx.db.read() as session:
        mailbox = fetch(session, Mailbox, mailbox_id)
        if not mailbox.connected or not mailbox.oauth_access_token:
            return None
        host, security = (
            (mailbox.imap_host, mailbox.imap_security)
            if imap
            else (mailbox.smtp_host, mailbox.smtp_security)
        )
        if not _may_log_in(ctx, host, security, mailbox.id):
            return None
        return open_sealed(ctx, mailbox.oauth_access_token, Mailbox, "oauth_access_token")


def imap_password(ctx: Context, mailbox: Mailbox | MailboxView) -> str | None:
    if not _may_log_in(ctx, mailbox.imap_host, mailbox.imap_security, mailbox.id):
        return None
    return open_sealed(ctx, mailbox.imap_password, Mailbox, "imap_password")


def _may_log_in(ctx: Context, host: str | None, security: str, mailbox_id: int) -> bool:
    try:
        check_plain_auth(ctx, host, security, None, "password")
    except CadenzaError:
        log.warning("mailbox %s: no password sent to %s without encryption", mailbox_id, host)
        return False
    return True


def check_plain_auth(
    ctx: Context, host: str | None, security: str, username: str | None, password: str | None
) -> None:
    """A password is never sent over an unencrypted connection, except to a host the
    installation allows (a relay on this machine, by default): on the network anyone
    on the path would read it."""
    if security != SmtpSecurity.NONE or not password or not host:
        return
    allowed = {h.strip().lower() for h in ctx.settings.plain_auth_hosts.split(",") if h.strip()}
    if host.strip().lower().strip("[]") not in allowed:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"logging in to {host} without encryption would expose the password: use tls "
            "or starttls (unencrypted logins are allowed only to CADENZA_PLAIN_AUTH_HOSTS)",
        )


# --- changing and removing mailboxes ----------------------------------------------------

_MAILBOX_FIELDS = (
    "from_email",
    "from_name",
    "transport",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "per_minute_limit",
    "daily_limit",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_password",
)
_NOT_NULL_MAILBOX_FIELDS = frozenset(
    {
        "from_email",
        "from_name",
        "transport",
        "smtp_security",
        "imap_security",
        "per_minute_limit",
        "daily_limit",
    }
)
# What reaching the server depends on: changing any of it is the fix a disconnected
# mailbox waits for, so it deserves a fresh try (a failing one disconnects it again).
_CONNECTION_FIELDS = frozenset(
    {"transport", "smtp_host", "smtp_port", "smtp_security", "smtp_username", "smtp_password"}
)
# A password belongs to the server and account it was given for: pointing the mailbox
# elsewhere clears it, so it is never replayed to a host its owner did not type it for.
_PASSWORD_BOUND_TO = {
    "smtp_password": ("smtp_host", "smtp_port", "smtp_username"),
    "imap_password": ("imap_host", "imap_port", "imap_username"),
}


# An OAuth mailbox's token goes only to the servers its provider's settings name.
_OAUTH_BOUND_TO = frozenset(
    {"transport", "smtp_host", "smtp_port", "smtp_security", "smtp_username",
     "imap_host", "imap_port", "imap_security", "imap_username"}
)  # fmt: skip


def update_mailbox(
    ctx: Context, mailbox_id: int, changes: dict, actor_id: int | None = None
) -> MailboxView:
    """Applies a partial change; the mailbox as it would be afterwards must pass create's rules.

    Checking the merged result, not only the changed fields, is what stops switching a
    mailbox to smtp without a host, or clearing the host of an smtp mailbox.
    """
    unknown = sorted(set(changes) - set(_MAILBOX_FIELDS))
    if unknown:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"a mailbox has no field {', '.join(unknown)}"
        )
    nulls = sorted(f for f in _NOT_NULL_MAILBOX_FIELDS.intersection(changes) if changes[f] is None)
    if nulls:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{', '.join(nulls)} cannot be null")
    values = dict(changes)
    if "from_email" in values:
        values["from_email"] = normalize_email(values["from_email"])
    try:
        if "transport" in values:
            values["transport"] = str(MailTransport(values["transport"]))
        for security in ("smtp_security", "imap_security"):
            if security in values:
                values[security] = str(SmtpSecurity(values[security]))
    except ValueError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    with ctx.db.transaction() as session:
        mailbox = fetch(session, Mailbox, mailbox_id, for_update=True)
        authorize_mailbox(session, actor_id, mailbox, Action.UPDATE)
        merged = {field: values.get(field, getattr(mailbox, field)) for field in _MAILBOX_FIELDS}
        if merged["transport"] == MailTransport.SMTP and not merged["smtp_host"]:
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "an smtp mailbox needs smtp_host")
        check_limits(merged["per_minute_limit"], merged["daily_limit"])
        changed = [
            field
            for field, value in values.items()
            if field in _PASSWORD_BOUND_TO or getattr(mailbox, field) != value
        ]
        for password, bound_to in _PASSWORD_BOUND_TO.items():
            moved = any(field in changed for field in bound_to)
            if moved and password not in values and getattr(mailbox, password):
                values[password] = None
                changed.append(password)
        for prefix in ("smtp", "imap"):
            password = f"{prefix}_password"
            has_password = values[password] if password in values else merged[password]
            check_plain_auth(
                ctx,
                merged[f"{prefix}_host"],
                merged[f"{prefix}_security"],
                merged[f"{prefix}_username"],
                has_password,
            )
        changed.sort()
        elsewhere = _OAUTH_BOUND_TO.intersection(changed)
        if mailbox.auth_method == MailboxAuth.OAUTH2 and elsewhere:
            # The token is the provider's, for its own servers: never replayed elsewhere.
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"{', '.join(sorted(elsewhere))} of an OAuth mailbox come from its provider "
                "(CADENZA_OAUTH_* settings): connect it again to change them",
            )
        check_hosts(ctx, session, actor_id, {f: values[f] for f in changed})
        for field in changed:
            value = values[field]
            if field in _PASSWORD_BOUND_TO:
                value = seal(ctx, value, Mailbox, field)
            setattr(mailbox, field, value)
        reconnected = not mailbox.connected and bool(_CONNECTION_FIELDS.intersection(changed))
        if reconnected:
            mailbox.connected, mailbox.disconnected_reason = True, None
        if changed:
            # Field names only: the audit trail must never hold the password.
            data = {"fields": changed, "reconnected": reconnected}
            record(session, ctx, actor_id, "mailbox.update", "mailbox", mailbox_id, data)
    return MailboxView.of(mailbox)


def delete_mailbox(ctx: Context, mailbox_id: int, actor_id: int | None = None) -> None:
    """Deletes a mailbox that nothing was ever scheduled or sent from.

    Enrollments, step runs and messages keep pointing at the mailbox they used: what was
    sent, and from where, outlives a change of mind. So a mailbox with history is refused
    rather than erasing that history or breaking its references.
    """
    try:
        with ctx.db.transaction() as session:
            # The row lock makes a concurrent enrollment (whose foreign key needs a share
            # lock on this row) either finish first, and be counted, or wait and then fail.
            mailbox = fetch(session, Mailbox, mailbox_id, for_update=True)
            authorize_mailbox(session, actor_id, mailbox, Action.DELETE)
            live = session.scalar(
                select(func.count())
                .select_from(Enrollment)
                .where(
                    Enrollment.mailbox_id == mailbox_id,
                    Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
                )
            )
            if live:
                raise CadenzaError(
                    ErrorCode.INVALID_STATE,
                    f"{live} live enrollment(s) send from mailbox {mailbox_id}: unenroll them "
                    "or let them finish before deleting it",
                    {"live_enrollments": live},
                )
            used = any(
                session.scalar(select(model.id).where(model.mailbox_id == mailbox_id).limit(1))
                is not None
                for model in (Enrollment, StepRun, Message)
            )
            if used:
                raise _mailbox_has_history(mailbox_id)
            session.delete(mailbox)
            data = {"from": mailbox.from_email}
            record(session, ctx, actor_id, "mailbox.delete", "mailbox", mailbox_id, data)
    except IntegrityError:  # history appeared between the checks and the delete
        raise _mailbox_has_history(mailbox_id) from None


def _mailbox_has_history(mailbox_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.INVALID_STATE,
        f"mailbox {mailbox_id} has sending history, which is kept: it cannot be deleted; "
        "stop sending from it instead",
    )
