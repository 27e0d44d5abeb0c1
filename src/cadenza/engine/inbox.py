"""Reading a mailbox's inbox over IMAP, without changing anything in it.

The folder is opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK[]:
either alone guarantees no \\Seen flag is set; we never store flags, move, copy or
expunge. Where we got to is kept per folder as (UIDVALIDITY, last UID): a new
UIDVALIDITY means the server renumbered the folder, so the cursor starts again —
harmless, since every message's event is keyed by its Message-ID.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy.exc import SQLAlchemyError

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import InboundVerdict, MailboxAuth, SmtpSecurity
from cadenza.domain.errors import CadenzaError
from cadenza.engine.imap_pinned import PinnedIMAPClient
from cadenza.services import outbound
from cadenza.services.accounts.mailboxes import MailboxView, imap_password
from cadenza.services.context import Context
from cadenza.services.oauth import tokens as oauth_tokens
from cadenza.services.signals import inbound
from cadenza.services.signals.inbox_cursors import Cursor, get_cursor, record_error, save_cursor
from cadenza.store.models import Mailbox

log = logging.getLogger("cadenza.inbox")

FOLDER = "INBOX"
TIMEOUT_SECONDS = 30.0
BATCH = 25
# Replies, auto-replies and bounces are decided by headers and the first text part: of
# a larger message (attachments) only this much is read.
MAX_BYTES = 1024 * 1024
# A folder seen for the first time (or renumbered) is read from this far back: old
# mail cannot concern sequences, and a large inbox must not be read in full.
FIRST_LOOK_BACK = timedelta(days=14)
# Server trouble: refusals, dropped connections, timeouts and TLS errors (all OSErrors).
FAILURES = (IMAPClientError, OSError)


@dataclass
class PollResult:
    mailbox_id: int
    fetched: int = 0
    kinds: dict[InboundVerdict, int] = field(default_factory=dict)
    error: str | None = None


def imap_credential(ctx: Context, mailbox: Mailbox) -> str | None:
    """What `connect` logs in with: the opened password, or for an OAuth mailbox a fresh
    access token (renewed first if it is about to expire)."""
    if mailbox.auth_method == MailboxAuth.OAUTH2:
        return oauth_tokens.imap_access_token(ctx, mailbox.id)
    return imap_password(ctx, mailbox)


def connect(
    mailbox: Mailbox, password: str | None, ssl_context: ssl.SSLContext | None = None
) -> IMAPClient:
    """`password` is the opened one (services.mailboxes.imap_password): stored sealed;
    for an OAuth mailbox, its access token (imap_credential), sent with SASL XOAUTH2."""
    security = SmtpSecurity(mailbox.imap_security)
    context = ssl_context or ssl.create_default_context()
    port = mailbox.imap_port or (993 if security is SmtpSecurity.TLS else 143)
    try:
        target = outbound.mailbox_target(mailbox.imap_host, port, "imap_host")
    except CadenzaError as refused:  # resolves to a metadata or link-local address
        raise OSError(refused.message) from None
    except outbound.Unresolvable as exc:
        raise OSError(str(exc)) from None
    try:
        client = PinnedIMAPClient(
            target,
            mailbox.imap_host,
            port=port,
            ssl=security is SmtpSecurity.TLS,
            ssl_context=context,
            timeout=TIMEOUT_SECONDS,
        )
    except IMAPClientError:  # a greeting that is not IMAP: never repeat what it said
        where = f"{mailbox.imap_host}:{port}"
        raise IMAPClientError(f"the server at {where} did not answer as an IMAP server") from None
    try:
        if security is SmtpSecurity.STARTTLS:
            client.starttls(context)
        user = mailbox.imap_username or mailbox.from_email
        if mailbox.auth_method == MailboxAuth.OAUTH2:
            client.oauth2_login(user, password or "")
        else:
            client.login(user, password or "")
    except BaseException:
        logout(client)
        raise
    return client


def check_login(ctx: Context, view: MailboxView) -> DeliveryResult:
    """A connection test of the inbox: logs in and out, reads nothing. SENT when the
    server took the login; AUTH_FAILED when it refused the credentials; TRANSIENT when
    it could not be reached. Never raises on server trouble."""
    mailbox = cast(Mailbox, view)  # connect reads only the settings both have
    try:
        client = connect(mailbox, imap_credential(ctx, mailbox))
    except LoginError as exc:
        return DeliveryResult(DeliveryOutcome.AUTH_FAILED, None, f"login refused: {exc}")
    except FAILURES as exc:
        return DeliveryResult(DeliveryOutcome.TRANSIENT, None, str(exc) or type(exc).__name__)
    logout(client)
    return DeliveryResult(DeliveryOutcome.SENT, None, "logged in: replies can be read")


def poll_mailbox(
    ctx: Context, mailbox: Mailbox, ssl_context: ssl.SSLContext | None = None
) -> PollResult:
    """Reads what arrived since the cursor and applies each message; never raises on
    server trouble (the error is kept on the cursor and logged, without credentials)."""
    result = PollResult(mailbox.id)
    try:
        client = connect(mailbox, imap_credential(ctx, mailbox), ssl_context)
    except FAILURES as exc:
        return _failed(ctx, result, exc)
    try:
        _read_folder(ctx, client, mailbox, result)
    except FAILURES as exc:
        return _failed(ctx, result, exc)
    finally:
        logout(client)
    return result


def _read_folder(ctx: Context, client: IMAPClient, mailbox: Mailbox, result: PollResult) -> None:
    status = client.select_folder(FOLDER, readonly=True)
    uidvalidity = int(status[b"UIDVALIDITY"])
    cursor = get_cursor(ctx, mailbox.id, FOLDER)
    if cursor is None or cursor.uidvalidity != uidvalidity:
        since = (ctx.clock.now() - FIRST_LOOK_BACK).date()
        uids = sorted(client.search(["SINCE", since]))
        if uids:
            cursor = Cursor(uidvalidity, uids[0] - 1)
        else:  # nothing recent: start after the newest message, whatever its age
            newest = max(client.search(["ALL"]), default=0)
            cursor = Cursor(uidvalidity, newest)
    else:
        uids = sorted(u for u in client.search(["UID", f"{cursor.last_uid + 1}:*"]))
        # "n:*" always matches the last message, even when it is older than n.
        uids = [u for u in uids if u > cursor.last_uid]
    for start in range(0, len(uids), BATCH):
        chunk = uids[start : start + BATCH]
        bodies = _bodies(client, chunk)
        for uid in chunk:
            raw = bodies.get(uid)
            if raw is not None:
                kind = _ingest(ctx, mailbox.id, raw, f"{FOLDER}:{uidvalidity}:{uid}")
                result.kinds[kind] = result.kinds.get(kind, 0) + 1
                result.fetched += 1
            cursor = Cursor(uidvalidity, uid)
        save_cursor(ctx, mailbox.id, FOLDER, cursor)
    if not uids:
        save_cursor(ctx, mailbox.id, FOLDER, cursor)


def _bodies(client: IMAPClient, uids: list[int]) -> dict[int, bytes]:
    """BODY.PEEK[] of each message (never sets \\Seen), cut at MAX_BYTES."""
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    small = [u for u in uids if sizes.get(u, {}).get(b"RFC822.SIZE", 0) <= MAX_BYTES]
    large = sorted(set(uids) - set(small))
    bodies = {}
    if small:
        for uid, data in client.fetch(small, ["BODY.PEEK[]"]).items():
            bodies[uid] = data.get(b"BODY[]")
    if large:
        for uid, data in client.fetch(large, [f"BODY.PEEK[]<0.{MAX_BYTES}>"]).items():
            bodies[uid] = data.get(b"BODY[]<0>")
    return {uid: body for uid, body in bodies.items() if body is not None}


def _ingest(ctx: Context, mailbox_id: int, raw: bytes, fallback_key: str) -> InboundVerdict:
    """One message; a message we cannot read is skipped (logged) rather than blocking
    every later one. Database errors do propagate: the cursor then stays put."""
    try:
        return inbound.ingest(ctx, mailbox_id, raw, fallback_key).kind
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("inbox of mailbox %s: skipped unreadable %s", mailbox_id, fallback_key)
        return InboundVerdict.UNREADABLE


def _failed(ctx: Context, result: PollResult, exc: BaseException) -> PollResult:
    result.error = f"{type(exc).__name__}: {exc}"[:500]
    log.warning("inbox of mailbox %s: %s", result.mailbox_id, result.error)
    record_error(ctx, result.mailbox_id, FOLDER, result.error)
    return result


def logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except FAILURES:
        with contextlib.suppress(*FAILURES):
            client.shutdown()
