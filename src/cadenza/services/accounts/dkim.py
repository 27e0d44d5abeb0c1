"""The sending domains' DKIM keys: generate one, show its DNS record, remove it, and
the signers the composer uses.

The private key is sealed like every other secret (keys.py: a copy of the database alone
signs nothing) and never leaves this module but as a `DkimSigner` for the composer; the
public key is what `cadenza dkim generate` prints as a TXT record. Admins only: a key
signs for everyone who sends from its domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain import dkim
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.store.models import DkimKey


@dataclass(frozen=True)
class DkimKeyView:
    """A domain's key as shown: its DNS record, never its private half."""

    domain: str
    selector: str
    public_key: str
    created_at: datetime

    @property
    def record_name(self) -> str:
        return dkim.record_name(self.selector, self.domain)

    @property
    def record_value(self) -> str:
        return dkim.record_value(self.public_key)

    @classmethod
    def of(cls, row: DkimKey) -> DkimKeyView:
        return cls(row.domain, row.selector, row.public_key, row.created_at)


def _checked(domain: str, selector: str) -> tuple[str, str]:
    try:
        return dkim.check_domain(domain), dkim.check_selector(selector)
    except dkim.DkimError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None


def generate_key(
    ctx: Context,
    domain: str,
    selector: str = dkim.DEFAULT_SELECTOR,
    *,
    replace: bool = False,
    actor_id: int | None = None,
) -> DkimKeyView:
    """A new key for the domain; an existing one is kept unless `replace` (a rotation:
    publish the new record under a new selector before the old one is removed)."""
    domain, selector = _checked(domain, selector)
    key = dkim.new_key()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.DKIM_KEY, Action.CREATE)
        row = session.scalar(select(DkimKey).where(DkimKey.domain == domain).with_for_update())
        if row is not None and not replace:
            raise CadenzaError(
                ErrorCode.CONFLICT,
                f"{domain} already has a DKIM key (selector {row.selector}): "
                "pass replace to rotate it",
                {"domain": domain, "selector": row.selector},
            )
        if row is None:
            row = DkimKey(domain=domain)
            session.add(row)
        row.selector, row.public_key = selector, key.public_key
        row.private_key = seal(ctx, key.private_pem, DkimKey, "private_key") or ""
        row.created_at = ctx.clock.now()
        session.flush()
        record(session, ctx, actor_id, "dkim.generate", "dkim_key", row.id,
               {"domain": domain, "selector": selector})  # fmt: skip
        return DkimKeyView.of(row)


def list_keys(ctx: Context, *, actor_id: int | None = None) -> list[DkimKeyView]:
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.DKIM_KEY, Action.READ)
        rows = session.scalars(select(DkimKey).order_by(DkimKey.domain))
        return [DkimKeyView.of(row) for row in rows]


def delete_key(ctx: Context, domain: str, *, actor_id: int | None = None) -> None:
    """Mail from the domain goes out unsigned from the next email composed on."""
    domain, _ = _checked(domain, dkim.DEFAULT_SELECTOR)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.DKIM_KEY, Action.DELETE)
        row = session.scalar(select(DkimKey).where(DkimKey.domain == domain))
        if row is None:
            raise CadenzaError(ErrorCode.NOT_FOUND, f"{domain} has no DKIM key")
        record(session, ctx, actor_id, "dkim.delete", "dkim_key", row.id, {"domain": domain})
        session.delete(row)


def signers(ctx: Context, session: Session) -> dict[str, dkim.DkimSigner]:
    """Every domain's signer, by domain: a handful of rows, read once per composed batch."""
    return {
        row.domain: dkim.DkimSigner(
            row.domain,
            row.selector,
            open_sealed(ctx, row.private_key, DkimKey, "private_key") or "",
        )
        for row in session.scalars(select(DkimKey))
    }
