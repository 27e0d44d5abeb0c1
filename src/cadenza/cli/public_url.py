"""Where the links in emails lead, decided when `cadenza serve` starts.

Unsubscribe, open and click links start at `CADENZA_PUBLIC_URL`. A server started on
another port than the default used to keep sending links to port 8000, silently. So:
unset, the public URL is where this server listens; set, but naming this machine on
another port than the one it listens on, the server says so at start. A public URL on
another host is taken as a proxy's address and trusted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cadenza.config import Settings

LOOPBACK = {"localhost", "127.0.0.1", "::1"}
ALL_INTERFACES = {"", "0.0.0.0", "::"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def listening_url(host: str, port: int) -> str:
    """The URL of this server as seen from this machine."""
    shown = "127.0.0.1" if host in ALL_INTERFACES else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def resolve(settings: Settings, host: str, port: int) -> tuple[Settings, list[str]]:
    """The settings the server runs with, and the warnings to print at start."""
    if "public_url" not in settings.model_fields_set:
        url = listening_url(host, port)
        warnings = []
        if host in ALL_INTERFACES:
            warnings.append(
                f"CADENZA_PUBLIC_URL is not set: links in emails lead to {url}, which only "
                "this machine reaches; set CADENZA_PUBLIC_URL to the address recipients use"
            )
        return settings.model_copy(update={"public_url": url}), warnings
    return settings, mismatch(settings.public_url, host, port)


def mismatch(public_url: str, host: str, port: int) -> list[str]:
    parts = urlsplit(public_url)
    try:
        public_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return [f"CADENZA_PUBLIC_URL {public_url} has no valid port"]
    this_machine = LOOPBACK | {host} if host not in ALL_INTERFACES else LOOPBACK
    if (parts.hostname or "") in this_machine and public_port != port:
        return [
            f"CADENZA_PUBLIC_URL is {public_url} but this server listens on port {port}: "
            "links in emails (unsubscribe, open, click) will not reach it. Set "
            f"CADENZA_PUBLIC_URL={listening_url(host, port)}, or the address of the proxy "
            "in front of it"
        ]
    return []
