"""Connecting a mailbox with OAuth 2.0: the authorization-code flow with PKCE.

`start_connect` remembers the attempt server-side (a random `state`, bound to the user
who started it, with the PKCE verifier, for a few minutes) and returns the provider's
authorization URL; `finish_connect` takes what the provider sent back to the redirect
URI, accepts it only for that same user, once, before it expires, exchanges the code
(with the verifier: a stolen code alone is worth nothing) and creates or updates the
user's mailbox for the account the provider names. A mailbox that was disconnected is
connected again, and its waiting steps go out in their order.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from cadenza.domain.contact_fields import normalize_email
from cadenza.domain.enums import MailboxAuth, MailTransport, OAuthProvider
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.oauth_providers import OAuthProviderConfig
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.accounts.mailboxes import MailboxView
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.oauth import client
from cadenza.store.models import Mailbox, OAuthState

log = logging.getLogger("cadenza.oauth")

_BAD_STATE = "this connect link is unknown, used or expired: start connecting again"


def provider_config(ctx: Context, provider: str) -> OAuthProviderConfig:
    """A provider this installation has configured; anything else is refused by name."""
    try:
        config = ctx.settings.oauth_provider(OAuthProvider(provider))
    except ValueError:
        allowed = ", ".join(p.value for p in OAuthProvider)
        raise CadenzaError(
            ErrorCode.NOT_FOUND,
            f"no OAuth provider {provider[:40]!r} (one of: {allowed})",
            {"provider": provider[:40]},
        ) from None
    if not config.configured:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"{config.label} is not set up on this installation: an admin sets "
            f"{', '.join(config.missing)} (docs/mailboxes.md)",
            {"provider": config.provider.value},
        )
    return config


def connectable(ctx: Context) -> list[OAuthProviderConfig]:
    """The providers the settings page offers a button for."""
    return ctx.settings.oauth_providers()


def start_connect(ctx: Context, provider: str, redirect_uri: str, *, actor_id: int) -> str:
    """The URL to send the user to; the attempt is remembered for `oauth_state_ttl_seconds`."""
    config = provider_config(ctx, provider)
    now = ctx.clock.now()
    state, verifier = client.new_state(), client.new_code_verifier()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.MAILBOX, Action.CREATE, [actor_id])
        session.execute(delete(OAuthState).where(OAuthState.expires_at < now))
        session.add(
            OAuthState(
                state=state,
                user_id=actor_id,
                provider=config.provider,
                code_verifier=seal(ctx, verifier, OAuthState, "code_verifier"),
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=now + timedelta(seconds=ctx.settings.oauth_state_ttl_seconds),
            )
        )
    return client.authorization_url(config, redirect_uri, state, verifier)


def finish_connect(
    ctx: Context,
    state: str,
    code: str | None,
    *,
    actor_id: int,
    error: str | None = None,
) -> MailboxView:
    """The callback: the state checked and spent, the code exchanged, the mailbox saved."""
    pending = _take_state(ctx, state, actor_id)
    config = provider_config(ctx, pending.provider)
    if error or not code:
        # The provider's own words (access_denied when the user said no), never echoed raw.
        said = (error or "no code")[:60]
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{config.label} did not grant access ({said}): nothing was connected",
            {"provider": config.provider.value},
        )
    verifier = open_sealed(ctx, pending.code_verifier, OAuthState, "code_verifier") or ""
    now = ctx.clock.now()
    try:
        tokens = client.exchange_code(config, pending.redirect_uri, code, verifier, now)
        email = client.account_email(config, tokens)
    except client.TokenEndpointError as exc:
        log.info("OAuth code exchange with %s failed: %s", config.label, exc.error)
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{config.label} refused the sign-in ({exc.error or 'unreachable'}): try again",
            {"provider": config.provider.value},
        ) from None
    if not email:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{config.label} did not say which address was signed in (the email scope?)",
        )
    if not tokens.refresh_token:
        log.warning("OAuth: %s issued no refresh token; the mailbox lasts one token", config.label)
    return _save_mailbox(ctx, actor_id, config, normalize_email(email), tokens)


def _take_state(ctx: Context, state: str, actor_id: int) -> OAuthState:
    """Spent whatever happens next: a state is good for one callback only."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        row = session.scalar(
            select(OAuthState).where(OAuthState.state == state[:64]).with_for_update()
        )
        if row is not None:
            session.delete(row)
            session.flush()
            session.expunge(row)
    # Someone else's state answers as an unknown one: it reveals nothing.
    if row is None or row.user_id != actor_id or row.expires_at < now:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, _BAD_STATE, {"field": "state"})
    return row


def _save_mailbox(
    ctx: Context, owner_id: int, config: OAuthProviderConfig, address: str, tokens: client.Tokens
) -> MailboxView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, owner_id, Resource.MAILBOX, Action.CREATE, [owner_id])
        mailbox = session.scalar(
            select(Mailbox)
            .where(Mailbox.owner_id == owner_id, Mailbox.from_email == address)
            .order_by(Mailbox.id)
            .limit(1)
            .with_for_update()
        )
        created = mailbox is None
        if mailbox is None:
            mailbox = Mailbox(owner_id=owner_id, from_email=address, from_name="", created_at=now)
            session.add(mailbox)
        mailbox.transport = MailTransport.SMTP
        mailbox.auth_method = MailboxAuth.OAUTH2
        mailbox.oauth_provider = config.provider
        mailbox.smtp_host, mailbox.smtp_port = config.smtp_host, config.smtp_port
        mailbox.smtp_security, mailbox.smtp_username = config.smtp_security, address
        mailbox.imap_host = config.imap_host or None
        mailbox.imap_port, mailbox.imap_security = config.imap_port, config.imap_security
        mailbox.imap_username = address
        # The passwords are for the other way of logging in: not kept beside the tokens.
        mailbox.smtp_password = mailbox.imap_password = None
        mailbox.oauth_access_token = seal(ctx, tokens.access_token, Mailbox, "oauth_access_token")
        mailbox.oauth_refresh_token = seal(
            ctx, tokens.refresh_token, Mailbox, "oauth_refresh_token"
        )
        mailbox.oauth_expires_at = tokens.expires_at
        reconnected = mailbox.connected is False
        mailbox.connected, mailbox.disconnected_reason = True, None
        session.flush()
        data = {"from": address, "provider": config.provider.value, "reconnected": reconnected}
        action = "mailbox.create" if created else "mailbox.oauth_connect"
        record(session, ctx, owner_id, action, "mailbox", mailbox.id, data)
    return MailboxView.of(mailbox)
