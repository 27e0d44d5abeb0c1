"""The brake on guessing: failed sign-ins counted per account and client address.

Kept in the database, so it holds across processes (several web workers) and restarts.
Keyed by the pair: a flood of wrong passwords for one account from one address stops
that pair only; the account's owner, signing in from their own address, is not locked
out by a stranger, and API tokens (counted under their own account name) are never
refused because someone mistyped a password. A valid token is always accepted, even
from a braked address: tokens carry 256 random bits, so the brake there only spares
the database a flood of lookups, it does not protect a guessable secret.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.store.models import LoginFailure

ATTEMPTS_ALLOWED = 10
WINDOW = timedelta(minutes=15)
API_TOKEN_ACCOUNT = "(api token)"  # not an email address: no user can have it


def _key(account: str) -> str:
    return account.strip().lower()[:320]


def check(ctx: Context, account: str, address: str) -> None:
    """Raises TOO_MANY_ATTEMPTS when this pair failed too often lately."""
    since = ctx.clock.now() - WINDOW
    with ctx.db.read() as session:
        failures = session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(
                LoginFailure.account == _key(account),
                LoginFailure.address == address[:64],
                LoginFailure.at > since,
            )
        )
    if failures >= ATTEMPTS_ALLOWED:
        raise CadenzaError(
            ErrorCode.TOO_MANY_ATTEMPTS,
            "too many failed attempts: wait a few minutes and try again",
            {"retry_after_seconds": int(WINDOW.total_seconds())},
        )


def failed(ctx: Context, account: str, address: str) -> None:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        session.execute(delete(LoginFailure).where(LoginFailure.at <= now - WINDOW))
        session.add(LoginFailure(account=_key(account), address=address[:64], at=now))


def succeeded(ctx: Context, account: str, address: str) -> None:
    """A right password forgives this pair's earlier mistakes."""
    with ctx.db.transaction() as session:
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.account == _key(account), LoginFailure.address == address[:64]
            )
        )
