"""Where Cadenza may open a connection: the address rules for webhooks and mailbox hosts.

A webhook URL or a mailbox host is typed by a user, and the server connects to it from
inside the network it runs in. Left open, that lets a user aim the server at what only
the server can reach: a cloud metadata service that hands out credentials, an admin
port on loopback, a database on the private network. The rules judge the *address a
name resolves to* (a name is only a pointer, and anyone can point one at 127.0.0.1), and
the caller connects to exactly that address — see services/outbound.py.

- Cloud metadata addresses are never allowed, for anyone.
- Link-local addresses (169.254/16, fe80::/10) are never allowed for mailboxes; for
  webhooks only when an admin allow-lists the network.
- Loopback, private, shared (100.64/10), unspecified, multicast and reserved addresses
  are refused for webhooks unless the host or network is allow-listed.

Pure: no resolution here, so every rule is testable without a network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The instance-metadata endpoints of the common clouds (AWS/GCP/Azure/OpenStack share
# the first; the IPv6 one is AWS's; the last is Alibaba's).
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


def address(value: str) -> IPAddress | None:
    """The IP address written in `value`, unwrapped from IPv4-mapped IPv6; else None."""
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def never_allowed(ip: IPAddress) -> str | None:
    """Why no allow-list can open this address (for mailboxes: link-local too)."""
    if ip in METADATA:
        return "a cloud metadata address"
    return None


def link_local(ip: IPAddress) -> str | None:
    return "a link-local address" if ip.is_link_local else None


def internal(ip: IPAddress) -> str | None:
    """Why this address is inside (not on the public internet), or None when it is public."""
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks an admin opened: `relay.local, *.corp.example, 10.0.0.0/8, ::1`.

    A name matches itself (case-insensitive) and `*.suffix` every name under the suffix;
    an address or network matches the addresses a host resolves to.
    """

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        names, suffixes, networks = set(), [], []
        for raw in (text or "").replace(";", ",").split(","):
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry.startswith("*."):
                suffixes.append(entry[1:])
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def has_name(self, host: str) -> bool:
        name = host.strip().lower().rstrip(".")
        return name in self.names or any(name.endswith(s) for s in self.suffixes)

    def has_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    def has_host(self, host: str) -> bool:
        """The host as typed: its name listed, or the address it spells inside a network."""
        literal = address(host)
        return self.has_address(literal) if literal is not None else self.has_name(host)


def webhook_refusal(host: str, ip: IPAddress, allow: AllowList) -> str | None:
    """Why a webhook may not be delivered to `ip` (which `host` resolved to), or None."""
    reason = never_allowed(ip)
    if reason is not None:
        return reason
    if allow.has_name(host) or allow.has_address(ip):
        return None
    return internal(ip)


def mailbox_refusal(ip: IPAddress) -> str | None:
    """Why no mailbox, not even one an admin set up, may connect to `ip`, or None."""
    return never_allowed(ip) or link_local(ip)
