"""A user's own touches: the email signature and the meeting link (docs/content.md).

Each user edits their own; an admin may edit anyone's (the policy's `profile` rules).
The signature is sanitised when saved, the link checked, and the change audited without
its content (a signature may carry a phone number: the audit says what changed, not to what).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadenza.domain import signatures
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.store.models import User

FIELDS = ("signature_html", "meeting_link")


@dataclass(frozen=True)
class Profile:
    user_id: int
    email: str
    signature_html: str | None
    meeting_link: str | None

    @classmethod
    def of(cls, user: User) -> Profile:
        return cls(user.id, user.email, user.signature_html, user.meeting_link)


def get_profile(ctx: Context, actor_id: int | None, user_id: int) -> Profile:
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.PROFILE, Action.READ, [user_id])
        return Profile.of(fetch(session, User, user_id))


def update_profile(
    ctx: Context, actor_id: int | None, user_id: int, changes: dict[str, Any]
) -> Profile:
    """Sets the fields given (None or "" clears one); unknown fields are refused."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"unknown profile field(s): {', '.join(unknown)}"
        )
    clean: dict[str, str | None] = {}
    if "signature_html" in changes:
        clean["signature_html"] = signatures.clean_signature(changes["signature_html"])
    if "meeting_link" in changes:
        clean["meeting_link"] = signatures.check_meeting_link(changes["meeting_link"])
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.PROFILE, Action.UPDATE, [user_id])
        user = fetch(session, User, user_id, for_update=True)
        changed = sorted(name for name, value in clean.items() if getattr(user, name) != value)
        for name in changed:
            setattr(user, name, clean[name])
        if changed:
            record(session, ctx, actor_id, "user.profile", "user", user_id, {"changed": changed})
        return Profile.of(user)
