"""Resolving a host once, judging the addresses, and handing back the one to connect to.

The check and the connection must concern the same address: resolving again to connect
would let a name answer a public address to the check and 127.0.0.1 to the connection
(DNS rebinding). So callers connect to the `Target.address` returned here, and keep the
name only for the Host header, TLS SNI and certificate check. Every address a name
resolves to is judged, not just the first: one bad answer refuses the host.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cadenza.domain import outbound as rules
from cadenza.domain.errors import CadenzaError, ErrorCode

# host, port → addresses; the real one asks the system resolver (hosts file, then DNS).
Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    host: str  # as typed: for Host, SNI and the certificate
    addresses: tuple[str, ...]  # what was checked, in the resolver's order: connect only here
    port: int

    @property
    def address(self) -> str:
        return self.addresses[0]


def connect(target: Target, timeout: float) -> socket.socket:
    """A TCP connection to the first checked address that answers (as create_connection
    would try every address of the name, but never one that was not checked)."""
    error: OSError | None = None
    for ip in target.addresses:
        try:
            return socket.create_connection((ip, target.port), timeout)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address to connect to for {target.host}")


class Unresolvable(Exception):
    """The name does not resolve (now): not a refusal, a failure to try again later."""


def resolve(host: str, port: int, resolver: Resolver | None = None) -> list[rules.IPAddress]:
    literal = rules.address(host)
    if literal is not None:
        return [literal]
    try:
        found = (resolver or system_resolver)(host, port)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from None
    addresses = [a for a in (rules.address(value) for value in found) if a is not None]
    if not addresses:
        raise Unresolvable(f"{host} does not resolve")
    return addresses


def _checked(
    host: str, port: int, judge: Callable[[rules.IPAddress], str | None], field: str,
    resolver: Resolver | None,
) -> Target:  # fmt: skip
    addresses = resolve(host, port, resolver)
    for ip in addresses:
        reason = judge(ip)
        if reason is not None:
            raise CadenzaError(
                ErrorCode.HOST_NOT_ALLOWED,
                f"{host} resolves to {reason} ({ip}); an admin can allow-list it",
                {"field": field, "host": host, "address": str(ip)},
            )
    return Target(host, tuple(str(ip) for ip in addresses), port)


def webhook_target(
    host: str, port: int, allow: rules.AllowList, resolver: Resolver | None = None
) -> Target:
    """Where to deliver a webhook, or HOST_NOT_ALLOWED (Unresolvable when DNS fails)."""
    return _checked(host, port, lambda ip: rules.webhook_refusal(host, ip, allow), "url", resolver)


def mailbox_target(host: str, port: int, field: str, resolver: Resolver | None = None) -> Target:
    """Where to connect for a mailbox: any address but metadata and link-local."""
    return _checked(host, port, rules.mailbox_refusal, field, resolver)
