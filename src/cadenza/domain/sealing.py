"""Sealing secrets the server must replay (mailbox passwords, webhook and link keys).

A sealed value is `sealed:v1:<key id>:<base64url(nonce || AES-GCM ciphertext)>`. AES-GCM
(an AEAD) means a value cannot be read, altered or moved to another column without the
key: the column's name is bound in as associated data, so a ciphertext copied from
`webhooks.secret` into `mailboxes.smtp_password` fails to open. The key id names which
key sealed the value, so keys can be rotated: a keyring opens with any key it holds and
seals only with its current one.

Keys live outside the database (see services/accounts/keys.py): reading the database alone
yields only ciphertexts.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value that this keyring cannot open (unknown key id, or tampered with)."""


def key_id(key: bytes) -> str:
    """A short public name for a key: a hash, so it reveals nothing about the key."""
    return hashlib.sha256(b"cadenza key id\0" + key).hexdigest()[:12]


def key_from_passphrase(passphrase: str) -> bytes:
    """The sealing key for CADENZA_SECRET_KEY: HKDF, so the key that seals is never the
    text an operator typed (which may also sign older links)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"cadenza sealing v1"
    ).derive(passphrase.encode("utf-8"))


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


@dataclass(frozen=True)
class Keyring:
    """The current key first, then older ones still accepted for opening."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys or any(len(k) != KEY_BYTES for k in self.keys):
            raise ValueError(f"a keyring needs at least one key of {KEY_BYTES} bytes")

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    def seal(self, plaintext: str, purpose: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext.encode("utf-8"), purpose.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{PREFIX}{self.current_id}:{body}"

    def open(self, value: str, purpose: str) -> str:
        if not is_sealed(value):
            raise SealError("not a sealed value")
        kid, _, body = value.removeprefix(PREFIX).partition(":")
        key = next((k for k in self.keys if key_id(k) == kid), None)
        if key is None:
            raise SealError(f"sealed with key {kid}, which this keyring does not hold")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"a value sealed with key {kid} does not open: altered?") from exc
        return plain.decode("utf-8")

    def sealed_with_current(self, value: str) -> bool:
        return value.startswith(f"{PREFIX}{self.current_id}:")
