"""Suppressions: the addresses of erased contacts, kept as keyed hashes only.

Erasing a contact (contacts.delete_contact) forgets everything about them, but a CSV
exported from another tool months later still holds their address: without a trace,
the next import would create them again and the next bulk enrollment email them. So
the erasure leaves the address's HMAC-SHA-256, and creating a contact with that
address (the API, the web app, an import row, a pasted list) is refused with
`suppressed` until an admin lifts it.

Why an HMAC and not a plain SHA-256: a plain hash of an address is a lookup away from
the address (hash a list of likely addresses and compare), so it would keep the
personal data it claims to drop. The key is derived from the link-signing key
(accounts/link_secret.py), which is stored sealed under the installation's key and
never changes, not even when the sealing key is rotated: a copy of the database alone
cannot test an address, and suppressions survive a key rotation. An installation that
loses its link-signing key (a new database without restoring app_secrets) loses its
suppressions with it, as it loses every link it ever sent (docs/contact-data.md).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import email_key, normalize_email
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.read_models import copy_row
from cadenza.store.models import Suppression

# Binds the derived key to this one use: the link-signing key itself never hashes addresses.
_PURPOSE = b"cadenza suppression v1"


@dataclass(frozen=True)
class SuppressionView:
    """A suppression as an admin sees one: no address, only when and which erased id."""

    id: int
    contact_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Suppression) -> SuppressionView:
        return copy_row(cls, row)


@lru_cache(maxsize=8)
def _derived_key(link_key: bytes) -> bytes:
    return hmac.new(link_key, _PURPOSE, hashlib.sha256).digest()


def digest(ctx: Context, session: Session, address: str) -> str:
    """The keyed hash of an address, as its normalised, lower-cased key."""
    key = _derived_key(link_secret(ctx, session))
    return hmac.new(key, email_key(address).encode("utf-8"), hashlib.sha256).hexdigest()


def prepare(ctx: Context) -> None:
    """Makes sure the key exists (created in a transaction of its own on first use), so
    that read-only transactions can hash addresses afterwards."""
    link_secret(ctx)


def find(ctx: Context, session: Session, address: str) -> Suppression | None:
    return session.scalar(
        select(Suppression).where(Suppression.email_hash == digest(ctx, session, address))
    )


def suppressed_among(ctx: Context, session: Session, addresses: list[str]) -> set[str]:
    """The keys (lower-cased) of those addresses that are suppressed: one query for a
    whole batch of an import, rather than one per row."""
    by_hash = {digest(ctx, session, a): email_key(a) for a in addresses}
    found = session.scalars(
        select(Suppression.email_hash).where(Suppression.email_hash.in_(list(by_hash)))
    )
    return {by_hash[h] for h in found}


def refusal() -> CadenzaError:
    return CadenzaError(
        ErrorCode.SUPPRESSED,
        "this address belongs to a contact that was erased: it is not added again "
        "unless an admin lifts its suppression (cadenza contacts unsuppress)",
        {"field": "email"},
    )


def refuse_suppressed(ctx: Context, session: Session, address: str) -> None:
    """Raises `suppressed` when `address` belongs to an erased contact."""
    if find(ctx, session, address) is not None:
        raise refusal()


def suppress(ctx: Context, session: Session, address: str, contact_id: int) -> None:
    """Inside the erasure's transaction; an address already suppressed stays so."""
    email_hash = digest(ctx, session, address)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash)):
        return
    try:
        with session.begin_nested():  # another erasure of the same address may race us
            session.add(
                Suppression(
                    email_hash=email_hash, contact_id=contact_id, created_at=ctx.clock.now()
                )
            )
    except IntegrityError:
        pass


def is_suppressed(ctx: Context, address: str, *, actor_id: int | None = None) -> bool:
    """Whether an address is suppressed (admins: it tells whether a person was erased)."""
    address = normalize_email(address)
    prepare(ctx)
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.SUPPRESSION, Action.READ)
        return find(ctx, session, address) is not None


def lift(ctx: Context, address: str, *, actor_id: int | None = None) -> SuppressionView:
    """Lets `address` be added again (the person asked to be back, or the erasure was a
    mistake); audited with the suppression's id, never the address."""
    address = normalize_email(address)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.SUPPRESSION, Action.DELETE)
        row = find(ctx, session, address)
        if row is None:
            raise CadenzaError(ErrorCode.NOT_FOUND, "this address is not suppressed")
        view = SuppressionView.of(row)
        session.delete(row)
        data = {"erased_contact_id": row.contact_id}
        record(session, ctx, actor_id, "suppression.lift", "suppression", row.id, data)
    return view
