"""Password and API-token hashing: only hashes are stored, never the secrets themselves.

A password hash names its parameters (`scrypt$ln=15,r=8,p=3$salt$digest`), so the
cost can be raised later: a hash made with other parameters still verifies, and the
caller re-hashes it with the current ones at the next successful login (`needs_rehash`).
Hashes from before parameters were written (`scrypt$salt$digest`) used ln=14, r=8, p=1.
The default (N=2^15, r=8, p=3: 32 MiB, about 0.1 s) follows the current OWASP advice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "cdz_"
DEFAULT_COST = 15  # log2 of scrypt's N


@dataclass(frozen=True)
class ScryptParams:
    ln: int  # log2 of N: memory and time
    r: int = 8
    p: int = 3

    def encode(self) -> str:
        return f"ln={self.ln},r={self.r},p={self.p}"

    def derive(self, password: str, salt: bytes) -> bytes:
        memory = 128 * self.r * (2**self.ln) + 128 * self.r * self.p
        return hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=2**self.ln,
            r=self.r,
            p=self.p,
            maxmem=memory + 2**20,
        )


_LEGACY = ScryptParams(ln=14, r=8, p=1)


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    params = ScryptParams(ln=cost)
    salt = secrets.token_bytes(16)
    digest = params.derive(password, salt)
    return "$".join(("scrypt", params.encode(), _b64(salt), _b64(digest)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _parse(stored: str | None) -> tuple[ScryptParams, bytes, bytes] | None:
    if not stored or not stored.startswith("scrypt$"):
        return None
    parts = stored.split("$")
    try:
        if len(parts) == 3:
            return _LEGACY, base64.b64decode(parts[1]), base64.b64decode(parts[2])
        if len(parts) == 4:
            fields = dict(item.split("=", 1) for item in parts[1].split(","))
            params = ScryptParams(int(fields["ln"]), int(fields["r"]), int(fields["p"]))
            if not (1 <= params.ln <= 22 and 1 <= params.r <= 32 and 1 <= params.p <= 16):
                return None  # a damaged row must not make one login take all the memory
            return params, base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (ValueError, KeyError):
        return None
    return None


def verify_password(password: str, stored: str | None) -> bool:
    parsed = _parse(stored)
    if parsed is None:
        return False
    params, salt, digest = parsed
    return hmac.compare_digest(params.derive(password, salt), digest)


def needs_rehash(stored: str | None, cost: int = DEFAULT_COST) -> bool:
    """True when the hash was made with other parameters than the current ones."""
    parsed = _parse(stored)
    return parsed is None or parsed[0] != ScryptParams(ln=cost)


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are long and random, so one fast hash is enough (no salt or stretching needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
