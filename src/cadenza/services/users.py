"""Users, their API tokens and their sending mailboxes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import normalize_email, parse_timezone
from cadenza.domain.enums import UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.secrets import hash_password, hash_token, new_api_token, verify_password
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.store.models import ApiToken, User


def create_user(
    ctx: Context,
    email: str,
    *,
    firstname: str = "",
    lastname: str = "",
    role: str = UserRole.MEMBER,
    timezone: str | None = None,
    password: str | None = None,
    can_enroll: bool = True,
    actor_id: int | None = None,
) -> User:
    address = normalize_email(email)
    try:
        role = UserRole(role)
    except ValueError:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "role must be admin, member or viewer"
        ) from None
    if timezone:
        parse_timezone(timezone)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.USER, Action.CREATE)
        if session.scalar(select(User.id).where(func.lower(User.email) == address.lower())):
            raise CadenzaError(ErrorCode.CONFLICT, f"a user with email {address} already exists")
        user = User(
            email=address,
            firstname=firstname,
            lastname=lastname,
            role=str(role),
            timezone=timezone,
            password_hash=hash_password(password) if password else None,
            can_enroll=can_enroll,
            created_at=ctx.clock.now(),
        )
        session.add(user)
        session.flush()
        record(session, ctx, actor_id, "user.create", "user", user.id, {"email": address})
    return user


def get_user(session: Session, user_id: int) -> User:
    return fetch(session, User, user_id)


def load_user(ctx: Context, user_id: int) -> User | None:
    with ctx.db.read() as session:
        return session.get(User, user_id)


def find_user_by_email(ctx: Context, email: str) -> User:
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise CadenzaError(ErrorCode.USER_NOT_FOUND, f"no user with email {email}")
    return user


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is stored


def create_token(ctx: Context, user_id: int, name: str) -> IssuedToken:
    token = new_api_token()
    with ctx.db.transaction() as session:
        get_user(session, user_id)
        row = ApiToken(
            user_id=user_id,
            name=name,
            prefix=token[:8],
            token_hash=hash_token(token),
            created_at=ctx.clock.now(),
        )
        session.add(row)
        session.flush()
        record(session, ctx, user_id, "token.create", "api_token", row.id, {"name": name})
    return IssuedToken(row.id, token)


# Recording every request's use would make every API read a write; once a minute is
# precise enough to tell an active token from a forgotten one.
TOKEN_USE_PRECISION = timedelta(minutes=1)


def user_for_token(ctx: Context, token: str) -> User | None:
    now = ctx.clock.now()
    with ctx.db.read() as session:
        found = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        ).first()
    if found is None:
        return None
    row, user = found
    if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_PRECISION:
        with ctx.db.transaction() as session:
            session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return user


# Checked when no user has the address, so that a wrong address costs as long as a
# wrong password and response times do not tell which addresses have accounts.
_DUMMY_HASH = hash_password("no such user")


def authenticate(ctx: Context, email: str, password: str) -> User | None:
    """The user with this email and password, or None (never says which one was wrong)."""
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.password_hash:
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, user.password_hash) else None


def list_users(ctx: Context) -> list[User]:
    with ctx.db.read() as session:
        return list(session.scalars(select(User).order_by(User.email)))


def update_user(
    ctx: Context,
    user_id: int,
    *,
    role: str | None = None,
    can_enroll: bool | None = None,
    actor_id: int | None = None,
) -> User:
    """An admin changes someone's role or enroll permission. The last admin stays admin,
    so a team can never lock itself out of its own settings."""
    if role is not None:
        try:
            role = UserRole(role)
        except ValueError:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR, "role must be admin, member or viewer"
            ) from None
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.USER, Action.UPDATE)
        user = fetch(session, User, user_id, for_update=True)
        if role is not None and role != UserRole.ADMIN and user.role == UserRole.ADMIN:
            admins = session.scalar(
                select(func.count()).select_from(User).where(User.role == str(UserRole.ADMIN))
            )
            if admins <= 1:
                raise CadenzaError(
                    ErrorCode.INVALID_STATE, "the last admin cannot stop being an admin"
                )
        changes = {}
        if role is not None:
            user.role = changes["role"] = str(role)
        if can_enroll is not None:
            user.can_enroll = changes["can_enroll"] = bool(can_enroll)
        record(session, ctx, actor_id, "user.update", "user", user_id, changes)
    return user


def list_tokens(ctx: Context, user_id: int) -> list[ApiToken]:
    """The user's tokens, live and revoked, newest first; only prefixes, never secrets."""
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
            )
        )


def revoke_token(ctx: Context, user_id: int, token_id: int) -> ApiToken:
    """Someone else's token answers as a missing one: token ids reveal nothing."""
    with ctx.db.transaction() as session:
        token = session.get(ApiToken, token_id, with_for_update=True)
        if token is None or token.user_id != user_id:
            raise CadenzaError(ErrorCode.NOT_FOUND, f"token {token_id} does not exist")
        if token.revoked_at is None:
            token.revoked_at = ctx.clock.now()
            record(session, ctx, user_id, "token.revoke", "api_token", token_id)
    return token
