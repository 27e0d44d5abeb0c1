"""DKIM (RFC 6376): signing what leaves with a sending domain's key, and the DNS record
that lets receivers check it.

For teams that send through their own relay, which signs nothing: a signature under the
From domain is what lets receivers (and DMARC) trust that the mail is the domain's. The
signature is computed once, when the message is composed and stored, over the exact
bytes that are later handed over, so a retry sends the very same signed message.
dkimpy does the canonicalisation and the RSA-SHA256 signature; this module only says
what is signed, and builds keys and records.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# The headers a receiver's view of the message depends on. Each is signed when present
# (dkimpy skips absent ones), so none can be added or changed on the way undetected.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
KEY_BITS = 2048  # what the common receivers expect; 1024 is refused by some
DEFAULT_SELECTOR = "cadenza"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class DkimError(ValueError):
    """A domain or selector that cannot be used in a DNS name."""


@dataclass(frozen=True)
class DkimSigner:
    """What signing one domain's mail takes; built from a stored key when composing."""

    domain: str
    selector: str
    private_pem: str

    def sign(self, raw: bytes) -> bytes:
        """The message with its DKIM-Signature header first (relaxed/relaxed)."""
        header: bytes = dkim.sign(
            raw,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private_pem.encode("ascii"),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
        return header + raw


@dataclass(frozen=True)
class NewKey:
    private_pem: str
    public_key: str  # base64 DER of the public key: the record's p=


def check_domain(domain: str) -> str:
    """A lower-case DNS domain of at least two labels, or DkimError."""
    name = domain.strip().lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise DkimError(f"{domain!r} is not a domain name (like example.com)")
    return name


def check_selector(selector: str) -> str:
    name = selector.strip().lower()
    if not _LABEL.match(name):
        raise DkimError(f"{selector!r} is not a DNS label (letters, digits and hyphens)")
    return name


def new_key() -> NewKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1: what dkimpy reads
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return NewKey(pem.decode("ascii"), base64.b64encode(public).decode("ascii"))


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def record_value(public_key: str) -> str:
    """The TXT record's text (split into 255-byte strings by whoever publishes it)."""
    return f"v=DKIM1; k=rsa; p={public_key}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
