"""The transport for a settings value: its kind says which transport (see base.Transport)."""

from __future__ import annotations

from cadenza.domain.transport_settings import CaptureSettings, SmtpSettings, TransportSettings
from cadenza.engine.transports.base import Transport
from cadenza.engine.transports.capture import CaptureTransport
from cadenza.engine.transports.smtp import SmtpTransport


def transport_for(settings: TransportSettings) -> Transport:
    """Built from what services/accounts/mailboxes.transport_settings read from the
    mailbox (the password already opened), or from a value a caller made by hand."""
    if isinstance(settings, CaptureSettings):
        return CaptureTransport()
    if isinstance(settings, SmtpSettings):
        return SmtpTransport(settings)
    raise TypeError(f"no transport for {type(settings).__name__}")
