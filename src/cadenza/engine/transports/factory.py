"""The transport for a mailbox, from its stored settings."""

from __future__ import annotations

from cadenza.domain.enums import MailTransport
from cadenza.engine.transports.base import Transport
from cadenza.engine.transports.capture import CaptureTransport
from cadenza.engine.transports.smtp import SmtpSettings, SmtpTransport
from cadenza.store.models import Mailbox

SMTP_TIMEOUT_SECONDS = 30.0


def settings_key(mailbox: Mailbox) -> tuple:
    """Changes when anything the connection depends on changes (so it is re-opened)."""
    return (
        mailbox.transport,
        mailbox.smtp_host,
        mailbox.smtp_port,
        mailbox.smtp_security,
        mailbox.smtp_username,
        mailbox.smtp_password,
    )


def transport_for(
    mailbox: Mailbox, password: str | None, *, timeout: float | None = None
) -> Transport:
    """`password` is the opened one (services.mailboxes.smtp_password): stored sealed."""
    if mailbox.transport == MailTransport.CAPTURE:
        return CaptureTransport()
    return SmtpTransport(
        SmtpSettings(
            host=mailbox.smtp_host or "",
            port=mailbox.smtp_port or (465 if mailbox.smtp_security == "tls" else 587),
            security=mailbox.smtp_security,
            username=mailbox.smtp_username,
            password=password,
            timeout=timeout or SMTP_TIMEOUT_SECONDS,
        )
    )
