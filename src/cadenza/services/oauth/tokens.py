"""Keeping an OAuth mailbox's access token fresh, and what a refused refresh means.

The worker asks for a mailbox's transport settings before it sends (worker_jobs), and
the inbox poller before it reads: both call `refresh_if_due` first, which renews the
access token once it is within `oauth_refresh_margin_seconds` of expiring, so a token
never runs out in the middle of a session. The HTTP call happens outside any
transaction (a slow provider must not hold the database's write lock).

A refresh the provider refuses for good (invalid_grant: consent revoked, password
changed, account deleted) disconnects the mailbox with the reason and emits
`mailbox.disconnected`: nothing fails, its steps wait (the claim and hand-over paths
already hold the emails of a disconnected mailbox) until the owner connects it again.
A provider that cannot be reached changes nothing: the next tick tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import or_, select

from cadenza.domain.enums import MailboxAuth
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.accounts.mailboxes import get_mailbox, oauth_access_token
from cadenza.services.context import Context
from cadenza.services.events_out.mailbox_state import mark_disconnected
from cadenza.services.lookup import fetch
from cadenza.services.oauth import client
from cadenza.store.models import Mailbox

log = logging.getLogger("cadenza.oauth")


def refresh_due(ctx: Context, mailbox_ids: Collection[int]) -> int:
    """refresh_if_due for those of these mailboxes whose token is about to expire (one
    statement finds them; a password mailbox costs nothing); how many it renewed."""
    now = ctx.clock.now()
    margin = timedelta(seconds=ctx.settings.oauth_refresh_margin_seconds)
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(Mailbox.id).where(
                    Mailbox.id.in_(mailbox_ids),
                    Mailbox.auth_method == MailboxAuth.OAUTH2,
                    Mailbox.connected.is_(True),
                    or_(
                        Mailbox.oauth_expires_at.is_(None), Mailbox.oauth_expires_at <= now + margin
                    ),
                )
            )
        )
    return sum(refresh_if_due(ctx, mailbox_id) for mailbox_id in due)


def refresh_if_due(ctx: Context, mailbox_id: int) -> bool:
    """Renews the access token of an OAuth mailbox about to expire; True if it did.

    Nothing for a password mailbox, a disconnected one (it waits for its owner), or a
    token with time left.
    """
    now = ctx.clock.now()
    margin = timedelta(seconds=ctx.settings.oauth_refresh_margin_seconds)
    with ctx.db.read() as session:
        mailbox = fetch(session, Mailbox, mailbox_id)
        if mailbox.auth_method != MailboxAuth.OAUTH2 or not mailbox.connected:
            return False
        if mailbox.oauth_expires_at is not None and mailbox.oauth_expires_at - margin > now:
            return False
        sealed_refresh = mailbox.oauth_refresh_token
        provider = mailbox.oauth_provider
    config = ctx.settings.oauth_provider(provider) if provider else None
    refresh_token = open_sealed(ctx, sealed_refresh, Mailbox, "oauth_refresh_token")
    if config is None or not refresh_token or not config.token_url:
        disconnect(
            ctx,
            mailbox_id,
            "the access token expired and cannot be renewed "
            "(no refresh token or token endpoint): connect the mailbox again",
            sealed_refresh,
        )
        return False
    try:
        tokens = client.refresh(config, refresh_token, now)
    except client.TokenEndpointError as exc:
        if exc.refused:
            reason = (
                f"{config.label} refused to renew the access token ({exc.error}: "
                f"{exc.description[:200]}): connect the mailbox again"
            )
            disconnect(ctx, mailbox_id, reason, sealed_refresh)
        else:
            log.warning("mailbox %s: token refresh failed, retrying later: %s", mailbox_id, exc)
        return False
    with ctx.db.transaction() as session:
        mailbox = fetch(session, Mailbox, mailbox_id, for_update=True)
        if mailbox.oauth_refresh_token != sealed_refresh:
            return False  # another worker renewed it meanwhile: theirs is as good
        mailbox.oauth_access_token = seal(ctx, tokens.access_token, Mailbox, "oauth_access_token")
        mailbox.oauth_refresh_token = seal(
            ctx, tokens.refresh_token, Mailbox, "oauth_refresh_token"
        )
        mailbox.oauth_expires_at = tokens.expires_at
    return True


def disconnect(ctx: Context, mailbox_id: int, reason: str, sealed_refresh: str | None) -> bool:
    """Marks the mailbox disconnected and tells the webhooks; False if it already was, or
    if its tokens changed since the refresh was tried (a reconnect, or another worker's
    refresh with a rotated token: that one's answer stands)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        mailbox = fetch(session, Mailbox, mailbox_id, for_update=True)
        if not mailbox.connected or mailbox.oauth_refresh_token != sealed_refresh:
            return False
        mark_disconnected(session, ctx, mailbox, reason, now)
    log.warning("mailbox %s disconnected: %s", mailbox_id, reason)
    return True


def imap_access_token(ctx: Context, mailbox_id: int) -> str | None:
    """A fresh access token for the inbox poller's XOAUTH2 login (None: none usable)."""
    refresh_if_due(ctx, mailbox_id)
    return oauth_access_token(ctx, mailbox_id, imap=True)


def refresh_before_test(ctx: Context, mailbox_id: int, *, actor_id: int) -> None:
    """Before a connection test: the token the worker would send, renewed if due. As the
    user sees the mailbox (someone else's answers as missing, as the test itself does)."""
    get_mailbox(ctx, mailbox_id, actor_id=actor_id)
    refresh_if_due(ctx, mailbox_id)
