"""SMTP delivery that never sends a message twice.

The engine records a hand-over before calling send() and lets the outcome decide whether a
retry is safe. So every failure is classified by *when* it happened: until the final "." of
DATA is written the server cannot have accepted the message, and a retry is safe (TRANSIENT);
once it is written, silence means "maybe delivered" (UNKNOWN, never resent).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable

from cadenza.domain.delivery_outcome import refusal
from cadenza.domain.errors import CadenzaError
from cadenza.domain.transport_settings import SmtpSettings
from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult
from cadenza.services import outbound

log = logging.getLogger(__name__)

# PLAIN and LOGIN work with any server-side password storage; CRAM-MD5 is often advertised
# but unusable (hashed passwords), so it is only tried when nothing else is offered.
_AUTH_PREFERENCE = ("PLAIN", "LOGIN", "CRAM-MD5")

# Bytes versions of smtplib's private _fix_eols/_quote_periods (its _fix_eols is str-only).
# Normalising bare CR/LF *before* dot-stuffing means no "\n.\n" can end the DATA early.
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_END_OF_DATA = b".\r\n"

_SENT = DeliveryOutcome.SENT
_TRANSIENT = DeliveryOutcome.TRANSIENT
_PERMANENT = DeliveryOutcome.PERMANENT
_AUTH_FAILED = DeliveryOutcome.AUTH_FAILED
_UNKNOWN = DeliveryOutcome.UNKNOWN


class _Failed(Exception):
    """Carries a classified failure out of the protocol steps.

    `usable` says the server answered and the session can go on after an RSET.
    """

    def __init__(self, result: DeliveryResult, *, usable: bool = False) -> None:
        super().__init__(result.reply)
        self.result = result
        self.usable = usable


class _StaleConnection(Exception):
    """A reused session turned out dead before any of the message was sent."""


class _Pinned:
    """Connects to the addresses that were checked (services/outbound.py), never to a
    second lookup of the name; smtplib keeps the name (`_host`) for SNI and the
    certificate check, in implicit TLS and STARTTLS alike."""

    def __init__(self, target: outbound.Target, *args, **kwargs) -> None:
        self._target = target
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = outbound.connect(self._target, timeout)
        if isinstance(self, smtplib.SMTP_SSL):
            return self.context.wrap_socket(sock, server_hostname=self._host)
        return sock


class _PinnedSMTP(_Pinned, smtplib.SMTP):
    pass


class _PinnedSMTP_SSL(_Pinned, smtplib.SMTP_SSL):
    pass


# After a session could not be opened, the next attempt waits 1, 2, 4 ... 60 seconds.
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 60.0


class SmtpTransport:
    """One SMTP session per mailbox, reused across sends; not thread-safe (one per worker).

    A session that could not be opened (refused, timed out, a 4xx greeting) is not tried
    again at once: the next attempts wait 1, 2, 4 ... up to 60 seconds, and a send in
    that time is refused before anything leaves (TRANSIENT: its step is retried later).
    A server that is down then costs its mailbox no connection timeout per email, and
    the server is not hammered by a worker with many emails for it.
    """

    def __init__(
        self, settings: SmtpSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._ssl_context = settings.ssl_context
        self._monotonic = monotonic  # injected: tests move it instead of sleeping
        self._failed_opens = 0
        self._next_open_at = 0.0
        self._last_failure = ""

    def send(self, sender: str, recipients: list[str], message: bytes) -> DeliveryResult:
        result = self._scrub(self._send(sender, recipients, message))
        if result.outcome is not _SENT:
            log.info("SMTP send to %s:%s: %s %s %s", *self._where(), *_summary(result))
        return result

    def check(self) -> DeliveryResult:
        """Test the settings on a fresh session (connect, TLS, AUTH, NOOP).

        SENT means the server accepted the session; the session is kept for later sends.
        """
        self._discard()
        try:
            smtp = self._open()  # asked for by a person: never held back by the backoff
            code, reply = smtp.noop()
        except _Failed as failed:
            return self._scrub(failed.result)
        except OSError as exc:
            self._discard()
            return self._scrub(DeliveryResult(_TRANSIENT, None, _describe("NOOP", exc)))
        except BaseException:
            self._discard()
            raise
        if 200 <= code < 300:
            return self._scrub(DeliveryResult(_SENT, code, _text(reply)))
        self._discard()
        return self._scrub(_by_reply_class(code, reply, "NOOP"))

    def prepare(self) -> None:
        """Opens the session (connect, greeting, EHLO, TLS, AUTH) before the first send
        needs it: the worker does so on a sender thread for a mailbox it just took on,
        while its first slot is still ahead, so that slot pays for MAIL and DATA only.
        A worker taking on a thousand mailboxes at once would otherwise open a thousand
        sessions inside their first slots. A failure leaves no session and no backoff:
        the send then opens one itself and meets, reports and counts the failure."""
        if self._smtp is not None or (
            self._failed_opens and self._monotonic() < self._next_open_at
        ):
            return
        try:
            self._open()
        except Exception:
            self._discard()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
            with contextlib.suppress(Exception):
                smtp.close()

    # -- one message ----------------------------------------------------------------------

    def _send(self, sender: str, recipients: list[str], message: bytes) -> DeliveryResult:
        if not recipients:
            return DeliveryResult(_PERMANENT, None, "no recipients")
        payload = _data_payload(message)
        try:
            if self._smtp is not None:
                try:
                    return self._transmit(self._smtp, sender, recipients, payload, reused=True)
                except _StaleConnection:
                    log.info("SMTP session to %s:%s was closed; reconnecting", *self._where())
                    self._discard()
            return self._transmit(self._connect(), sender, recipients, payload, reused=False)
        except _Failed as failed:
            self._recover(usable=failed.usable)
            return failed.result
        except BaseException:
            # A session left mid-DATA must never carry the next message: it would be merged.
            self._discard()
            raise

    def _transmit(
        self,
        smtp: smtplib.SMTP,
        sender: str,
        recipients: list[str],
        payload: bytes,
        *,
        reused: bool,
    ) -> DeliveryResult:
        step, handed_over = "MAIL", False
        try:
            options = _mail_options(smtp, sender, recipients, payload)
            if smtp.has_extn("pipelining"):
                # RFC 2920: MAIL, every RCPT and DATA in one write, the replies read in
                # order: two round trips a message instead of four (real providers all
                # offer it), and half the worker's socket calls and thread wake-ups
                smtp.send(_envelope_commands(smtp, sender, recipients, options))
                replies = []
                for step in ("MAIL", *["RCPT"] * len(recipients), "DATA"):
                    code, reply = smtp.getreply()
                    if reused and step == "MAIL" and code == 421:
                        raise _StaleConnection
                    replies.append((step, code, reply))
                    if code == 421:
                        break  # the server is closing the session: no other reply comes
                _expect_envelope(replies)
            else:
                code, reply = smtp.mail(sender, options)
                if reused and code == 421:  # e.g. the server's idle timeout, announced
                    raise _StaleConnection
                _expect(code, reply, step, 250)
                step = "RCPT"
                for recipient in recipients:  # all or nothing: one refusal aborts the message
                    code, reply = smtp.rcpt(recipient)
                    _expect(code, reply, step, 250, 251)
                step = "DATA"
                code, reply = smtp.docmd("DATA")
                _expect(code, reply, step, 354)
            smtp.send(payload)
            step, handed_over = "end of DATA", True  # from here on the server may have it
            smtp.send(_END_OF_DATA)
            code, reply = smtp.getreply()
        except (ValueError, smtplib.SMTPNotSupportedError) as exc:
            # CR/LF in an address, or SMTPUTF8 needed but not offered: nothing was sent.
            result = DeliveryResult(_PERMANENT, None, _describe(step, exc))
            raise _Failed(result, usable=True) from exc
        except OSError as exc:  # includes every smtplib exception and socket timeouts
            if reused and step == "MAIL" and isinstance(exc, smtplib.SMTPServerDisconnected):
                raise _StaleConnection from exc
            outcome = _UNKNOWN if handed_over else _TRANSIENT
            raise _Failed(DeliveryResult(outcome, None, _describe(step, exc))) from exc
        if 200 <= code < 300:
            return DeliveryResult(_SENT, code, _text(reply))
        if not 400 <= code < 600:  # a garbled answer to the end of DATA proves nothing
            raise _Failed(DeliveryResult(_UNKNOWN, code, _text(reply)))
        raise _Failed(_by_reply_class(code, reply, step), usable=code != 421)

    # -- session --------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        wait = self._next_open_at - self._monotonic()
        if self._failed_opens and wait > 0:
            reason = (
                f"connect: not tried again for {wait:.3g} s after {self._failed_opens} "
                f"failed attempt(s); last: {self._last_failure}"
            )
            raise _Failed(DeliveryResult(_TRANSIENT, None, reason))
        try:
            smtp = self._open()
        except _Failed as failed:
            if failed.result.outcome is _TRANSIENT:
                self._failed_opens += 1
                backoff = RECONNECT_FIRST_SECONDS * 2 ** (self._failed_opens - 1)
                self._next_open_at = self._monotonic() + min(backoff, RECONNECT_MAX_SECONDS)
                self._last_failure = failed.result.reply
            raise
        self._failed_opens = 0
        return smtp

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        step, smtp = "connect", None
        try:
            target = outbound.mailbox_target(s.host, s.port, "smtp_host")
        except CadenzaError as refused:  # the host now resolves to metadata/link-local
            raise _Failed(DeliveryResult(_AUTH_FAILED, None, refused.message)) from None
        except outbound.Unresolvable as exc:
            raise _Failed(DeliveryResult(_TRANSIENT, None, f"connect: {exc}")) from None
        try:
            if s.security == "tls":
                smtp = _PinnedSMTP_SSL(
                    target,
                    s.host,
                    s.port,
                    local_hostname=s.local_hostname,
                    timeout=s.timeout,
                    context=self._tls_context(),
                )
            else:
                smtp = _PinnedSMTP(
                    target, s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
                )
            # The final ".\r\n" is written on its own (see _transmit); with Nagle on it would
            # wait for the server's delayed ACK, ~40 ms per message.
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            step = "EHLO"
            smtp.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                step = "STARTTLS"
                smtp.starttls(context=self._tls_context())
                step = "EHLO"
                smtp.ehlo_or_helo_if_needed()
            if s.xoauth2:
                step = "AUTH"
                self._login_xoauth2(smtp)
            elif s.username:
                step = "AUTH"
                self._login(smtp)
        except _Failed:
            _close_quietly(smtp)
            raise
        except OSError as exc:  # refused, DNS, TLS handshake/verification, timeouts, 4xx/5xx
            _close_quietly(smtp)
            code = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else None
            if code is not None and not 200 <= code < 600:
                raise _Failed(DeliveryResult(_TRANSIENT, None, _not_smtp(step, s))) from exc
            raise _Failed(DeliveryResult(_TRANSIENT, code, _describe(step, exc))) from exc
        log.debug("SMTP session open to %s:%s (%s)", s.host, s.port, s.security)
        self._smtp = smtp
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """One attempt with one mechanism: retrying bad credentials only risks a lockout."""
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        mechanism = next((m for m in _AUTH_PREFERENCE if m in offered), None)
        if mechanism is None:
            reason = f"server offers no usable AUTH mechanism (offered: {' '.join(offered) or '-'})"
            raise _Failed(DeliveryResult(_AUTH_FAILED, None, reason))
        smtp.user, smtp.password = self.settings.username, self.settings.password or ""
        try:
            smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower().replace("-", "_")))
        except smtplib.SMTPAuthenticationError as exc:
            # 4xx (454 temporary failure) is the server's trouble, not the credentials'.
            outcome = _TRANSIENT if 400 <= exc.smtp_code < 500 else _AUTH_FAILED
            raise _Failed(DeliveryResult(outcome, exc.smtp_code, _text(exc.smtp_error))) from exc
        finally:
            smtp.user = smtp.password = ""

    def _login_xoauth2(self, smtp: smtplib.SMTP) -> None:
        """SASL XOAUTH2: the account and a bearer token in one initial response. A refusal
        (535, or 334 with an error document) means the token is no good: AUTH_FAILED, so
        the mailbox waits for its token to be renewed or for its owner to reconnect it."""
        s = self.settings
        if not s.oauth_token:
            reason = "no OAuth access token: the mailbox must be connected again"
            raise _Failed(DeliveryResult(_AUTH_FAILED, None, reason))
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        if "XOAUTH2" not in offered:
            reason = f"server does not offer AUTH XOAUTH2 (offered: {' '.join(offered) or '-'})"
            raise _Failed(DeliveryResult(_AUTH_FAILED, None, reason))
        initial = xoauth2_response(s.username or "", s.oauth_token)
        try:
            # smtplib answers a 334 challenge (the server's error document) with an empty
            # line, as the mechanism requires, and then reads the final 535.
            smtp.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")
        except smtplib.SMTPAuthenticationError as exc:
            outcome = _TRANSIENT if 400 <= exc.smtp_code < 500 else _AUTH_FAILED
            raise _Failed(DeliveryResult(outcome, exc.smtp_code, _text(exc.smtp_error))) from exc

    def _recover(self, *, usable: bool) -> None:
        """After a failure the next send must start on a clean session."""
        if usable and self._smtp is not None:
            try:
                if self._smtp.rset()[0] == 250:
                    return
            except OSError:
                pass
        self._discard()

    def _discard(self) -> None:
        """Drop the session without QUIT: after a timeout or a lost reply its state is unknown."""
        smtp, self._smtp = self._smtp, None
        _close_quietly(smtp)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _where(self) -> tuple[str, int]:
        return self.settings.host, self.settings.port

    def _scrub(self, result: DeliveryResult) -> DeliveryResult:
        """Servers may echo what they received (e.g. a garbled AUTH line): never pass it on."""
        password = self.settings.password
        token = self.settings.oauth_token
        if not password and not token:
            return result
        user = self.settings.username or ""
        secrets: tuple[str, ...] = ()
        if password:
            secrets += (password, _b64(password), _b64(f"\0{user}\0{password}"))
        if token:
            secrets += (token, _b64(xoauth2_response(user, token)))
        reply = result.reply
        for secret in secrets:
            reply = reply.replace(secret, "***")
        return (
            result if reply == result.reply else DeliveryResult(result.outcome, result.code, reply)
        )


def xoauth2_response(user: str, token: str) -> str:
    """The XOAUTH2 initial client response, before base64 (smtplib and imaplib encode it)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def _data_payload(message: bytes) -> bytes:
    """The DATA body ready for the wire, ending in CRLF so that only ".\\r\\n" is left to write."""
    payload = message
    crlf = payload.count(b"\r\n")
    if payload.count(b"\n") != crlf or payload.count(b"\r") != crlf:  # a bare CR or LF
        payload = _LINE_END.sub(b"\r\n", payload)
    if payload.startswith(b".") or b"\n." in payload:  # what composing writes has none
        payload = _LEADING_DOT.sub(b"..", payload)
    return payload if payload.endswith(b"\r\n") else payload + b"\r\n"


def _mail_options(
    smtp: smtplib.SMTP, sender: str, recipients: list[str], payload: bytes
) -> list[str]:
    options = []
    if smtp.has_extn("size"):  # lets the server refuse an oversized message before DATA
        options.append(f"SIZE={len(payload)}")
    if smtp.has_extn("8bitmime") and not payload.isascii():
        options.append("BODY=8BITMIME")
    if not all(address.isascii() for address in (sender, *recipients)):
        options.append("SMTPUTF8")  # smtplib refuses (SMTPNotSupportedError) if not offered
    return options


# An address smtplib's quoteaddr() would hand back unchanged inside <>: its parser
# (email.utils.parseaddr, ~10 µs) is then skipped.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def _quoted(address: str) -> str:
    if _PLAIN_ADDRESS.fullmatch(address) and ".." not in address:
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _envelope_commands(
    smtp: smtplib.SMTP, sender: str, recipients: list[str], options: list[str]
) -> bytes:
    """MAIL FROM, one RCPT TO per recipient and DATA, each line as smtplib's mail(),
    rcpt() and docmd() write it (the same options, quoting, refusal of CR/LF in an
    address, and SMTPUTF8 switching the session to UTF-8), as one block."""
    optionlist = ""
    if options and smtp.does_esmtp:
        if any(option.lower() == "smtputf8" for option in options):
            if not smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            smtp.command_encoding = "utf-8"
        optionlist = " " + " ".join(options)
    lines = [
        f"mail FROM:{_quoted(sender)}{optionlist}",
        *(f"rcpt TO:{_quoted(recipient)}" for recipient in recipients),
        "DATA",
    ]
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("command and arguments contain prohibited newline characters")
    return "".join(f"{line}\r\n" for line in lines).encode(smtp.command_encoding)


# What each command of the envelope must be answered with to go on.
_ENVELOPE_OK = {"MAIL": (250,), "RCPT": (250, 251), "DATA": (354,)}


def _expect_envelope(replies: list[tuple[str, int, bytes]]) -> None:
    """A pipelined envelope's replies, all read (so the session stays in step), checked
    in order: the first refusal decides, as it does when the commands go one by one.

    A server that answers DATA with 354 after refusing MAIL or a recipient (RFC 2920
    says it must not, with no recipient left) waits for a message: it is never given
    one, not even an empty one that would reach the recipients it took. The session is
    dropped instead, which abandons the transaction."""
    for stage, code, reply in replies:
        if code not in _ENVELOPE_OK[stage]:
            asked_for_data = replies[-1][0] == "DATA" and replies[-1][1] == 354
            raise _Failed(
                _by_reply_class(code, reply, stage), usable=code != 421 and not asked_for_data
            )


def _expect(code: int, reply: bytes, stage: str, *ok: int) -> None:
    if code not in ok:
        raise _Failed(_by_reply_class(code, reply, stage), usable=code != 421)


def _by_reply_class(code: int, reply: bytes, stage: str) -> DeliveryResult:
    """5xx: refused for good, this step (the recipient, the message) or the mailbox itself
    (its sender, credentials, relaying: domain.delivery_outcome.refusal); anything else
    (4xx, garbage) may pass later."""
    text = _text(reply)
    return DeliveryResult(refusal(code, text, stage), code, text)


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return reply.strip()


def _not_smtp(step: str, settings: SmtpSettings) -> str:
    """What a server that is not an SMTP server said is never repeated: a member could
    otherwise read an internal service's banner (or more) through a connection test."""
    where = f"{settings.host}:{settings.port}"
    return f"{step}: the server at {where} did not answer as an SMTP server"


def _describe(step: str, exc: BaseException) -> str:
    """smtplib re-raises socket errors as SMTPServerDisconnected: keep the original cause."""
    text = f"{step}: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _summary(result: DeliveryResult) -> tuple[str, str, str]:
    return result.outcome.value, "" if result.code is None else str(result.code), result.reply


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()
