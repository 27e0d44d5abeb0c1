"""How to reach a mailbox's server: the plain value a transport is built from.

A transport needs a handful of facts (host, port, security, login, timeout), not the
stored mailbox: the service that reads the mailbox opens its sealed password and hands
over one of these frozen values (services/accounts/mailboxes.transport_settings), and the
engine's transports never see the database. The same value is what a sending worker
compares to decide whether its open connection still matches the mailbox, and what a
test builds by hand to talk to a server with no database at all.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

SECURITY_MODES = ("none", "starttls", "tls")

# Per socket operation (connect, TLS handshake, each reply) while a worker sends.
SMTP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "none" | "starttls" | "tls" (implicit TLS)
    username: str | None = None
    password: str | None = None
    timeout: float = SMTP_TIMEOUT_SECONDS  # per socket operation: connect, TLS, each reply
    ssl_context: ssl.SSLContext | None = None  # None: ssl.create_default_context()
    local_hostname: str | None = None  # EHLO name; None: socket.getfqdn()
    # OAuth 2.0 mailboxes log in with SASL XOAUTH2 (username + access token), never with
    # the password; `xoauth2` without a token (a disconnected mailbox) logs in with nothing.
    xoauth2: bool = False
    oauth_token: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {SECURITY_MODES}, not {self.security!r}")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive: a send must never wait forever")

    def __repr__(self) -> str:
        # Settings end up in tracebacks and log lines: the password must not.
        password = "'***'" if self.password else repr(self.password)
        token = "'***'" if self.oauth_token else repr(self.oauth_token)
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port!r}, security={self.security!r}, "
            f"username={self.username!r}, password={password}, timeout={self.timeout!r}, "
            f"local_hostname={self.local_hostname!r}, xoauth2={self.xoauth2!r}, "
            f"oauth_token={token})"
        )


@dataclass(frozen=True)
class CaptureSettings:
    """Nothing to connect to: the engine already keeps every message in its database."""


# What a transport is built from: the kind of transport follows from the kind of value.
TransportSettings = SmtpSettings | CaptureSettings
