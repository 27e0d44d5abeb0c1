"""Users, their API tokens and passwords, and the sessions made with them.

Every web session carries the user's `session_epoch` from when it was made; raising the
epoch ends all of them at once (logout, a password or role change, deactivation): the
cookie stays signed but no longer matches, so a stolen or copied cookie dies too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from cadenza.domain import token_scopes
from cadenza.domain.contact_fields import normalize_email, parse_timezone
from cadenza.domain.enums import UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.secrets import (
    hash_password,
    hash_token,
    needs_rehash,
    new_api_token,
    verify_password,
)
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import ApiToken, User
from cadenza.store.prepared import Prepared


@dataclass(frozen=True)
class UserView:
    """A user as the web app and the CLI see one: everything but the password hash.
    It fits domain/policy.py's `Actor`, so the role guards ask the policy about it."""

    id: int
    email: str
    firstname: str
    lastname: str
    role: str
    can_enroll: bool
    can_override_enrollment_rules: bool
    timezone: str | None
    daily_enrollment_limit: int | None
    created_at: datetime
    session_epoch: int
    deactivated_at: datetime | None

    @classmethod
    def of(cls, row: User) -> UserView:
        return copy_row(cls, row)


@dataclass(frozen=True)
class TokenView:
    """An API token as listed: its prefix and dates, never its hash."""

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: str | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenView:
        return copy_row(cls, row)


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
    can_override_enrollment_rules: bool = False,
    actor_id: int | None = None,
) -> UserView:
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
            password_hash=_hash(ctx, _bounded(password)) if password else None,
            can_enroll=can_enroll,
            can_override_enrollment_rules=bool(can_override_enrollment_rules),
            created_at=ctx.clock.now(),
        )
        session.add(user)
        session.flush()
        record(session, ctx, actor_id, "user.create", "user", user.id, {"email": address})
    return UserView.of(user)


def get_user(session: Session, user_id: int) -> User:
    return fetch(session, User, user_id)


def load_user(ctx: Context, user_id: int) -> UserView | None:
    with ctx.db.read() as session:
        user = session.get(User, user_id)
        return None if user is None else UserView.of(user)


def find_user_by_email(ctx: Context, email: str) -> UserView:
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise CadenzaError(ErrorCode.USER_NOT_FOUND, f"no user with email {email}")
    return UserView.of(user)


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is stored


def create_token(
    ctx: Context, user_id: int, name: str, *, scopes: list[str] | None = None
) -> IssuedToken:
    """A token for the user; with scopes (admins only), an integration's narrower key."""
    stored = token_scopes.parse(scopes)
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "a token name has 1 to 100 characters")
    token = new_api_token()
    with ctx.db.transaction() as session:
        user = get_user(session, user_id)
        if stored is not None and user.role != UserRole.ADMIN:
            raise CadenzaError(
                ErrorCode.PERMISSION_DENIED, "only admins create integration (scoped) tokens"
            )
        row = ApiToken(
            user_id=user_id,
            name=name,
            prefix=token[:8],
            token_hash=hash_token(token),
            created_at=ctx.clock.now(),
            scopes=stored,
        )
        session.add(row)
        session.flush()
        data = {"name": name, "scopes": stored}
        record(session, ctx, user_id, "token.create", "api_token", row.id, data)
    return IssuedToken(row.id, token)


# Recording every request's use would make every API read a write; once a minute is
# precise enough to tell an active token from a forgotten one.
TOKEN_USE_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenHolder:
    user: UserView
    scopes: str | None  # None: a full token; else what domain/token_scopes.allows opens


def user_for_token(ctx: Context, token: str) -> UserView | None:
    holder = resolve_token(ctx, token)
    return holder.user if holder is not None else None


# Every API request's token check: one statement, compiled once and run on the
# driver's cursor outside a transaction (store/prepared.py, `Database.single_read`),
# its user read as the columns of a UserView, not an ORM object (bench/api.py).
_TOKEN_HOLDER = Prepared(
    select(
        ApiToken.id,
        ApiToken.last_used_at,
        ApiToken.scopes,
        *(getattr(User, f.name) for f in fields(UserView)),
    )
    .join(User, User.id == ApiToken.user_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        User.deactivated_at.is_(None),
    )
)


def resolve_token(ctx: Context, token: str) -> TokenHolder | None:
    now = ctx.clock.now()
    with ctx.db.single_read() as connection:
        found = _TOKEN_HOLDER.rows(connection, {"token_hash": hash_token(token)})
    if not found:
        return None
    token_id, last_used_at, scopes, *user = found[0]
    if last_used_at is None or now - last_used_at > TOKEN_USE_PRECISION:
        with ctx.db.transaction() as session:
            used = update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            session.execute(used)
    return TokenHolder(UserView(*user), scopes)


MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte per guess would be a cheap way to load us


def _bounded(password: str) -> str:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a password has at most {MAX_PASSWORD_LENGTH} characters",
            {"field": "password"},
        )
    return password


def check_new_password(password: str) -> str:
    """A changed password: at least MIN_PASSWORD_LENGTH characters. (An admin creating
    an account may set a shorter first one, which its user then changes.)"""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            {"field": "password"},
        )
    return password


def _hash(ctx: Context, password: str) -> str:
    return hash_password(password, ctx.settings.password_hash_cost)


@lru_cache
def _dummy_hash(cost: int) -> str:
    """Checked when no user has the address, so that a wrong address costs as long as a
    wrong password and response times do not tell which addresses have accounts."""
    return hash_password("no such user", cost)


def authenticate(ctx: Context, email: str, password: str) -> UserView | None:
    """The active user with this email and password, or None (never says which was wrong).

    A hash made with older parameters is replaced by one with the current cost, now that
    the password is known to be right.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    cost = ctx.settings.password_hash_cost
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.password_hash:
        verify_password(password, _dummy_hash(cost))
        return None
    if not verify_password(password, user.password_hash) or user.deactivated_at is not None:
        return None
    if needs_rehash(user.password_hash, cost):
        with ctx.db.transaction() as session:
            row = fetch(session, User, user.id, for_update=True)
            row.password_hash = _hash(ctx, password)
            user = row
    return UserView.of(user)


def session_user(ctx: Context, user_id: int, epoch: object) -> UserView | None:
    """The user a session cookie names, if that session was not ended since."""
    user = load_user(ctx, user_id)
    if user is None or user.deactivated_at is not None or user.session_epoch != epoch:
        return None
    return user


def end_sessions(ctx: Context, user_id: int, actor_id: int | None = None) -> UserView:
    """Ends every web session of this user, everywhere (a sign-out does this)."""
    with ctx.db.transaction() as session:
        user = fetch(session, User, user_id, for_update=True)
        user.session_epoch += 1
        record(session, ctx, actor_id, "user.sessions_end", "user", user_id)
    return UserView.of(user)


def change_password(
    ctx: Context,
    user_id: int,
    new_password: str,
    *,
    current_password: str | None = None,
    actor_id: int | None = None,
) -> UserView:
    """Sets a new password and ends every session made with the old one.

    Users changing their own password give the current one (`current_password`), so a
    session left open on a shared computer is not enough to take the account over.
    """
    check_new_password(new_password)
    with ctx.db.read() as session:
        stored = get_user(session, user_id).password_hash
    if current_password is not None and not verify_password(current_password, stored):
        raise CadenzaError(
            ErrorCode.PERMISSION_DENIED, "the current password is not right", {"field": "current"}
        )
    new_hash = _hash(ctx, new_password)
    with ctx.db.transaction() as session:
        user = fetch(session, User, user_id, for_update=True)
        user.password_hash = new_hash
        user.session_epoch += 1
        record(session, ctx, actor_id, "user.password_change", "user", user_id)
    return UserView.of(user)


def set_active(ctx: Context, user_id: int, active: bool, actor_id: int | None = None) -> UserView:
    """Deactivates (or reactivates) a user: no sign-in, no token, every session ended.
    Their data and history stay; the last active admin cannot be deactivated."""
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.USER, Action.UPDATE)
        user = fetch(session, User, user_id, for_update=True)
        if active and user.deactivated_at is not None:
            user.deactivated_at = None
        elif not active and user.deactivated_at is None:
            if user.role == UserRole.ADMIN and _active_admins(session) <= 1:
                raise CadenzaError(
                    ErrorCode.INVALID_STATE, "the last active admin cannot be deactivated"
                )
            user.deactivated_at = ctx.clock.now()
            user.session_epoch += 1
        else:
            return UserView.of(user)
        action = "user.activate" if active else "user.deactivate"
        record(session, ctx, actor_id, action, "user", user_id)
    return UserView.of(user)


def _active_admins(session: Session) -> int:
    return session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == str(UserRole.ADMIN), User.deactivated_at.is_(None))
    )


def list_users(ctx: Context) -> list[UserView]:
    with ctx.db.read() as session:
        return [UserView.of(u) for u in session.scalars(select(User).order_by(User.email))]


def first_users(ctx: Context, limit: int) -> list[UserView]:
    """Up to `limit` users, oldest first: enough for the CLI to tell "none", "the only
    one" and "choose one" apart without loading the whole team."""
    with ctx.db.read() as session:
        rows = session.scalars(select(User).order_by(User.id).limit(limit))
        return [UserView.of(row) for row in rows]


def update_user(
    ctx: Context,
    user_id: int,
    *,
    role: str | None = None,
    can_enroll: bool | None = None,
    can_override_enrollment_rules: bool | None = None,
    actor_id: int | None = None,
) -> UserView:
    """An admin changes someone's role or permissions (enroll, override enrollment
    rules). The last admin stays admin, so a team can never lock itself out of its own
    settings."""
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
        demoted = role is not None and role != UserRole.ADMIN and user.role == UserRole.ADMIN
        if demoted and user.deactivated_at is None and _active_admins(session) <= 1:
            raise CadenzaError(ErrorCode.INVALID_STATE, "the last admin cannot stop being an admin")
        changes = {}
        if role is not None and user.role != str(role):
            user.role = changes["role"] = str(role)
            user.session_epoch += 1  # sessions made under the old role end
        if can_enroll is not None:
            user.can_enroll = changes["can_enroll"] = bool(can_enroll)
        if can_override_enrollment_rules is not None:
            user.can_override_enrollment_rules = changes["can_override_enrollment_rules"] = bool(
                can_override_enrollment_rules
            )
        record(session, ctx, actor_id, "user.update", "user", user_id, changes)
    return UserView.of(user)


def list_tokens(ctx: Context, user_id: int) -> list[TokenView]:
    """The user's tokens, live and revoked, newest first; only prefixes, never secrets."""
    with ctx.db.read() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
        return [TokenView.of(row) for row in rows]


def revoke_token(
    ctx: Context, user_id: int, token_id: int, actor_id: int | None = None
) -> TokenView:
    """Someone else's token answers as a missing one: token ids reveal nothing. An admin
    revokes another user's token by naming that user (`actor_id` is the admin)."""
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TOKEN, Action.DELETE, [user_id])
        token = session.get(ApiToken, token_id, with_for_update=True)
        if token is None or token.user_id != user_id:
            raise CadenzaError(ErrorCode.NOT_FOUND, f"token {token_id} does not exist")
        if token.revoked_at is None:
            token.revoked_at = ctx.clock.now()
            actor = user_id if actor_id is None else actor_id
            record(session, ctx, actor, "token.revoke", "api_token", token_id)
    return TokenView.of(token)


def revoke_all_tokens(ctx: Context, user_id: int, actor_id: int | None = None) -> int:
    """Revokes every live token of a user (an admin's brake on a lost laptop); how many."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TOKEN, Action.DELETE, [user_id])
        get_user(session, user_id)
        revoked = session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        data = {"count": revoked}
        record(session, ctx, actor_id, "token.revoke_all", "user", user_id, data)
    return revoked
