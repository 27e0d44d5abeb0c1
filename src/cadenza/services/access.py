"""The policy applied inside a use case's transaction, to the acting user as stored now.

Use cases take `actor_id`: the user the API, a web page or the CLI (`--as`) acts for.
It is loaded in the use case's own transaction, so a role changed a moment ago is the
role that counts. `None` means a trusted internal caller (the engine, a migration,
a test's setup), never a person: every route, page and command passes its user, and
the authorization matrix test proves that for every route.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from cadenza.domain import policy
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.lookup import fetch
from cadenza.store.models import Enrollment, Mailbox, User

ACTOR_KEY = "cadenza.acting_user"


def authorize(
    session: Session,
    actor_id: int | None,
    resource: Resource,
    action: Action,
    owners: Iterable[int | None] = (),
    *,
    hidden_as: CadenzaError | None = None,
) -> User | None:
    """Raises unless the actor may; returns the actor (None for an internal caller)."""
    if actor_id is None:
        return None
    actor = fetch(session, User, actor_id)
    policy.check(actor, resource, action, owners, hidden_as=hidden_as)
    session.info[ACTOR_KEY] = actor_id  # events this transaction writes name who caused them
    return actor


def acting_user_id(session: Session) -> int | None:
    """The person this transaction acts for, once a use case authorized them."""
    return session.info.get(ACTOR_KEY)


def may_act_for(session: Session, actor_id: int | None, user_id: int) -> bool:
    """Whether `actor_id` may make something happen in `user_id`'s name (send from their
    mailbox): themself or an admin. Unknown (None) is an internal caller, trusted."""
    if actor_id is None or actor_id == user_id:
        return True
    actor = session.get(User, actor_id)
    return actor is not None and policy.is_admin(actor)


def owner_filter(session: Session, actor_id: int | None, resource: Resource) -> int | None:
    """The owner a listing is narrowed to for this actor (None: everyone's)."""
    if actor_id is None:
        return None
    return policy.owner_filter(fetch(session, User, actor_id), resource)


def authorize_enrolling(
    user: policy.EnrollingActor, mailbox: Mailbox | None = None, *, named: bool = False
) -> None:
    """Enrolling acts as `user`, the enroller, and is checked even with no person
    acting: an automation rule acts as the user it names, with that user's permission
    and mailboxes. Without `mailbox`: may `user` enroll at all (their enroll permission,
    never a viewer); with it: may they send from it (their own, or an admin). `named`
    words the refusal for a rule that names `user`, rather than for `user` themself."""
    if not policy.may_enroll(user):
        who = f"user {user.email} does" if named else "you do"
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, f"{who} not have permission to enroll")
    if mailbox is not None and not policy.may(
        user, Resource.ENROLLMENT, Action.CREATE, [mailbox.owner_id]
    ):
        hint = (
            f"does not belong to {user.email}: a rule sends from a mailbox of the user it acts as"
            if named
            else "belongs to another user: send from one of yours"
        )
        raise CadenzaError(ErrorCode.MAILBOX_NOT_YOURS, f"mailbox {mailbox.id} {hint}")


def authorize_enrollment(
    session: Session, actor_id: int | None, enrollment: Enrollment, action: Action
) -> None:
    """An enrollment is its enroller's and its mailbox owner's; to another member it
    does not exist (viewers read every one, admins do anything)."""
    owners = [enrollment.enrolled_by_id, session.get(Mailbox, enrollment.mailbox_id).owner_id]
    hidden = CadenzaError(
        ErrorCode.ENROLLMENT_NOT_FOUND,
        f"enrollment {enrollment.id} does not exist",
        {"id": enrollment.id},
    )
    authorize(session, actor_id, Resource.ENROLLMENT, action, owners, hidden_as=hidden)
