"""IMAPClient connecting to the addresses that were checked, not to a second lookup.

The mailbox's IMAP host is resolved and judged once (services/outbound.py: never a
metadata or link-local address); these classes open the TCP connection to exactly
those addresses and keep the name for TLS (SNI and the certificate check), with
implicit TLS and STARTTLS alike.
"""

from __future__ import annotations

from imapclient import IMAPClient, imap4, tls

from cadenza.services import outbound


class _PinnedPlain(imap4.IMAP4WithTimeout):
    def __init__(self, target: outbound.Target, *args) -> None:
        self._target = target
        super().__init__(*args)

    def _create_socket(self, timeout=None):
        return outbound.connect(self._target, timeout if timeout is not None else self._timeout)


class _PinnedTLS(tls.IMAP4_TLS):
    def __init__(self, target: outbound.Target, *args) -> None:
        self._target = target
        super().__init__(*args)

    def _create_socket(self, timeout=None):
        sock = outbound.connect(self._target, timeout if timeout is not None else self._timeout)
        return tls.wrap_socket(sock, self.ssl_context, self.host)


class PinnedIMAPClient(IMAPClient):
    def __init__(self, target: outbound.Target, *args, **kwargs) -> None:
        self._target = target
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self):
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _PinnedTLS(self._target, self.host, self.port, self.ssl_context, timeout)
        return _PinnedPlain(self._target, self.host, self.port, timeout)
