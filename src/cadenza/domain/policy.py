"""Who may do what: the one access policy (role × resource × action, with owner checks).

Every service that reads or changes a resource asks this module, so the API, the web
app and the CLI answer alike: no route, page or command decides on its own. The
table is pure data so `docs/security.md` can show it and a test can read it.

Roles: `admin` may do everything; `member` writes and works with what they own;
`viewer` reads what the team shares and never writes.

Who an owner is depends on the resource, and the service says it (`owners`): a
sequence's, list's, record's or mailbox's `owner_id`; a task's assignee; for an
enrollment the user who made it and the owner of the mailbox it sends from; for a
message the owner of its mailbox. Enrolling is creating an enrollment whose owner is
the mailbox it sends from: one's own, or anyone's for an admin. A few actions also need
a per-user permission an admin grants (`FLAGS`: enrolling needs `can_enroll`); `GRANTS`
lets a member do an admins-only action when granted (overriding enrollment rules). A
resource with no owner (`owner_id` NULL, as lists and records made before owners
existed) is the team's: only an admin changes it.

A sequence is shared by its `sharing` (`shared_owners`): shared with the team, every
signed-in user counts among its owners (`EVERYONE`) for the actions its sharing opens,
reading (seeing, enrolling into, cloning) for `team_use`, editing as well for
`team_edit`. Archiving it and changing its sharing stay its owner's and the admins'.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from cadenza.domain.enums import Sharing, UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode


class Resource(StrEnum):
    SEQUENCE = "sequence"
    STEP = "step"
    MAILBOX = "mailbox"
    ENROLLMENT = "enrollment"
    TASK = "task"
    MESSAGE = "message"
    CONTACT = "contact"
    RECORD = "record"
    OBJECT_TYPE = "object_type"
    LIST = "list"
    LIST_ENROLL_JOB = "list_enroll_job"
    EVENT = "event"
    WEBHOOK = "webhook"
    AUTOMATION_RULE = "automation_rule"
    USER = "user"
    TOKEN = "token"
    DKIM_KEY = "dkim_key"  # a sending domain's signing key: the installation's, admins'
    SUPPRESSION = "suppression"  # an erased address kept as a hash (docs/contact-data.md)
    PREFERENCES = "preferences"  # a user's task reminder and digest preferences
    PROFILE = "profile"  # a user's signature and meeting link (docs/content.md)
    BOOKING_WEBHOOK = "booking_webhook"  # Cal.com / Calendly signing secrets
    TASK_OUTCOME = "task_outcome"  # a team's own call/touch outcome (docs/tasks.md)
    TEMPLATE = "template"  # an email template of the library; `shared_may` adds sharing
    SNIPPET = "snippet"
    REPORT = "report"  # team reports and their row exports: a rep's work (docs/reports.md)
    # The enrollment rules (exclusivity, re-enrollment, days since emailed): updating them
    # is overriding them for a contact when enrolling (docs/enrollment.md).
    ENROLLMENT_RULE = "enrollment_rule"


class Action(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # archive, for sequences
    SHARE = "share"  # change who else may use or change it (sequences)


class Who(StrEnum):
    """Who a rule lets through; the owner checks are the resource's `owners`."""

    ANYONE = "anyone"  # every signed-in user, viewers included
    OBSERVER = "admins, viewers, owners"  # viewers read everything, members their own
    WRITER = "admins, members"  # anyone but a viewer
    OWNER = "admins, owner"  # an admin, or a member who owns it
    SELF = "admins, the user themself"  # one's own account and tokens, viewers too
    ADMIN = "admins"


R, A = Resource, Action

RULES: dict[tuple[Resource, Action], Who] = {
    (R.SEQUENCE, A.READ): Who.OWNER,  # owners: everyone when shared (shared_owners)
    (R.SEQUENCE, A.CREATE): Who.WRITER,
    (R.SEQUENCE, A.UPDATE): Who.OWNER,  # everyone (but viewers) when shared to edit
    (R.SEQUENCE, A.DELETE): Who.OWNER,
    (R.SEQUENCE, A.SHARE): Who.OWNER,  # sharing and "save as template"
    (R.STEP, A.READ): Who.ANYONE,
    (R.STEP, A.UPDATE): Who.OWNER,  # steps are saved with their sequence
    (R.MAILBOX, A.READ): Who.OWNER,
    (R.MAILBOX, A.CREATE): Who.OWNER,  # for oneself; for someone else, admins
    (R.MAILBOX, A.UPDATE): Who.OWNER,
    (R.MAILBOX, A.DELETE): Who.OWNER,
    (R.ENROLLMENT, A.READ): Who.OBSERVER,
    (R.ENROLLMENT, A.CREATE): Who.OWNER,  # owners: the mailbox's; and FLAGS' can_enroll
    (R.ENROLLMENT, A.UPDATE): Who.OWNER,  # pause, resume, unenroll, tokens
    (R.TASK, A.READ): Who.OWNER,
    (R.TASK, A.UPDATE): Who.OWNER,  # complete (with an outcome), skip, reschedule
    (R.MESSAGE, A.READ): Who.OWNER,  # the outbox
    (R.MESSAGE, A.UPDATE): Who.OWNER,  # review an unknown send
    (R.CONTACT, A.READ): Who.ANYONE,
    (R.CONTACT, A.CREATE): Who.WRITER,
    (R.CONTACT, A.UPDATE): Who.WRITER,  # contacts are the team's address book
    (R.CONTACT, A.DELETE): Who.WRITER,
    (R.RECORD, A.READ): Who.ANYONE,
    (R.RECORD, A.CREATE): Who.WRITER,
    (R.RECORD, A.UPDATE): Who.OWNER,
    (R.RECORD, A.DELETE): Who.OWNER,
    (R.OBJECT_TYPE, A.READ): Who.ANYONE,
    (R.OBJECT_TYPE, A.CREATE): Who.ADMIN,
    (R.OBJECT_TYPE, A.UPDATE): Who.ADMIN,
    (R.OBJECT_TYPE, A.DELETE): Who.ADMIN,
    (R.LIST, A.READ): Who.ANYONE,
    (R.LIST, A.CREATE): Who.WRITER,
    (R.LIST, A.UPDATE): Who.OWNER,  # rename, add and remove members
    (R.LIST, A.DELETE): Who.OWNER,
    (R.LIST_ENROLL_JOB, A.CREATE): Who.WRITER,
    (R.LIST_ENROLL_JOB, A.READ): Who.OBSERVER,
    (R.EVENT, A.CREATE): Who.WRITER,
    (R.EVENT, A.READ): Who.ANYONE,
    (R.EVENT, A.UPDATE): Who.ADMIN,  # undo (revoke) a complaint, unsubscribe or bounce
    (R.WEBHOOK, A.READ): Who.ADMIN,
    (R.WEBHOOK, A.CREATE): Who.ADMIN,
    (R.WEBHOOK, A.UPDATE): Who.ADMIN,
    (R.WEBHOOK, A.DELETE): Who.ADMIN,
    (R.AUTOMATION_RULE, A.READ): Who.ANYONE,
    (R.AUTOMATION_RULE, A.CREATE): Who.ADMIN,
    (R.AUTOMATION_RULE, A.UPDATE): Who.ADMIN,
    (R.AUTOMATION_RULE, A.DELETE): Who.ADMIN,
    (R.USER, A.READ): Who.SELF,  # oneself; admins everyone
    (R.USER, A.CREATE): Who.ADMIN,
    (R.USER, A.UPDATE): Who.ADMIN,  # role, can_enroll, (de)activation
    (R.TOKEN, A.READ): Who.SELF,
    (R.TOKEN, A.CREATE): Who.SELF,  # for oneself; for someone else, admins
    (R.TOKEN, A.DELETE): Who.SELF,
    (R.DKIM_KEY, A.READ): Who.ADMIN,
    (R.DKIM_KEY, A.CREATE): Who.ADMIN,
    (R.DKIM_KEY, A.DELETE): Who.ADMIN,
    (R.SUPPRESSION, A.READ): Who.ADMIN,
    (R.SUPPRESSION, A.DELETE): Who.ADMIN,  # lift: the address may be added again
    (R.PREFERENCES, A.READ): Who.SELF,  # one's own reminders and digest, viewers too
    (R.PREFERENCES, A.UPDATE): Who.SELF,
    (R.PROFILE, A.READ): Who.SELF,
    (R.PROFILE, A.UPDATE): Who.SELF,  # one's own signature and link; admins anyone's
    (R.BOOKING_WEBHOOK, A.READ): Who.ADMIN,
    (R.BOOKING_WEBHOOK, A.UPDATE): Who.ADMIN,  # set or clear a signing secret
    (R.TASK_OUTCOME, A.READ): Who.ANYONE,
    (R.TASK_OUTCOME, A.CREATE): Who.ADMIN,
    (R.TASK_OUTCOME, A.UPDATE): Who.ADMIN,
    (R.TASK_OUTCOME, A.DELETE): Who.ADMIN,
    # Templates and snippets: their owner's, and what its sharing opens (`shared_may`).
    (R.TEMPLATE, A.READ): Who.OWNER,
    (R.TEMPLATE, A.CREATE): Who.WRITER,
    (R.TEMPLATE, A.UPDATE): Who.OWNER,
    (R.TEMPLATE, A.DELETE): Who.OWNER,  # archive, and change the sharing
    (R.SNIPPET, A.READ): Who.OWNER,
    (R.SNIPPET, A.CREATE): Who.WRITER,
    (R.SNIPPET, A.UPDATE): Who.OWNER,
    (R.SNIPPET, A.DELETE): Who.OWNER,
    # Admins and viewers (managers) read everyone's figures; a member reads their own
    # work, the enrollments they made or that send from their mailbox (as enrollments).
    (R.REPORT, A.READ): Who.OBSERVER,
    (R.ENROLLMENT_RULE, A.READ): Who.ANYONE,
    (R.ENROLLMENT_RULE, A.UPDATE): Who.ADMIN,  # override per contact; members by GRANTS
}

# Actions that also need a permission an admin grants per user (the user's column named
# here), whatever the role: an admin without it does not enroll either.
FLAGS: dict[tuple[Resource, Action], str] = {
    (R.ENROLLMENT, A.CREATE): "can_enroll",
}


# In `owners`: the whole team, every signed-in user (never a user id: ids start at 1).
EVERYONE = 0

# What each sharing opens to the whole team, beyond the owner and the admins.
SHARED_ACTIONS: dict[Sharing, frozenset[Action]] = {
    Sharing.PRIVATE: frozenset(),
    Sharing.TEAM_USE: frozenset({Action.READ}),
    Sharing.TEAM_EDIT: frozenset({Action.READ, Action.UPDATE}),
}


def shared_owners(owner_id: int | None, sharing: str, action: Action) -> list[int | None]:
    """Who owns a shared item for `action`: its owner, and everyone when shared for it."""
    if action in SHARED_ACTIONS[Sharing(sharing)]:
        return [owner_id, EVERYONE]
    return [owner_id]


def shared_for(action: Action) -> list[Sharing]:
    """The sharings that open `action` to everyone (what a listing keeps of other users'
    sequences, templates or snippets)."""
    return [sharing for sharing, actions in SHARED_ACTIONS.items() if action in actions]


# Admins-only actions a member may do too when an admin grants the permission (the user's
# column named here). Unlike FLAGS, these add to a role and take nothing from admins.
GRANTS: dict[tuple[Resource, Action], str] = {
    (R.ENROLLMENT_RULE, A.UPDATE): "can_override_enrollment_rules",
}


class Actor(Protocol):
    """What the policy needs of a user (the store's User fits; an actor without a
    `FLAGS` attribute is refused what needs it). Read-only, so frozen read models fit."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...


class EnrollingActor(Actor, Protocol):
    """A user enrolling (or a rule acting as one): a stored user or its read model; the
    refusal names them by address."""

    @property
    def email(self) -> str: ...


# What a refusal by role alone says: the same words from a rule and from a role guard.
ROLE_REFUSALS = {
    Who.ADMIN: "only admins can do this",
    Who.WRITER: "viewers can read but not change anything",
}


def _denied(resource: Resource, action: Action, who: Who) -> str:
    if who in ROLE_REFUSALS:
        return ROLE_REFUSALS[who]
    return (
        f"this {resource.replace('_', ' ')} belongs to another user: only its owner or "
        f"an admin can {action} it"
    )


def may(
    actor: Actor, resource: Resource, action: Action, owners: Iterable[int | None] = ()
) -> bool:
    """True when the rule lets `actor` do `action` on a resource owned by `owners`."""
    who = RULES.get((resource, action))
    if who is None:  # no rule, no access: a new action must be added to the table
        return False
    flag = FLAGS.get((resource, action))
    if flag is not None and not getattr(actor, flag, False):
        return False
    role = actor.role
    if role == UserRole.ADMIN:
        return True
    if who is Who.ANYONE:
        return True
    if who is Who.ADMIN:
        grant = GRANTS.get((resource, action))
        return grant is not None and role == UserRole.MEMBER and bool(getattr(actor, grant, False))
    if who is Who.OBSERVER and role == UserRole.VIEWER:
        return True
    owned = bool({actor.id, EVERYONE} & {owner for owner in owners if owner is not None})
    if who is Who.SELF:
        return owned
    if role != UserRole.MEMBER:  # a viewer reads what is theirs (a task, a mailbox)
        return role == UserRole.VIEWER and who is Who.OWNER and action == Action.READ and owned
    if who is Who.WRITER:
        return True
    return owned


def check(
    actor: Actor,
    resource: Resource,
    action: Action,
    owners: Iterable[int | None] = (),
    *,
    hidden_as: CadenzaError | None = None,
) -> None:
    """Raises permission_denied, or `hidden_as` (a not-found error) for resources whose
    very existence is private to their owners, so ids reveal nothing of others'."""
    if may(actor, resource, action, owners):
        return
    if hidden_as is not None and not may(actor, resource, Action.READ, owners):
        raise hidden_as
    who = RULES.get((resource, action), Who.ADMIN)
    raise CadenzaError(ErrorCode.PERMISSION_DENIED, _denied(resource, action, who))


def sees_all(actor: Actor, resource: Resource) -> bool:
    """Whether a listing of `resource` shows everyone's, or only what `actor` owns."""
    who = RULES[(resource, Action.READ)]
    if actor.role == UserRole.ADMIN or who is Who.ANYONE:
        return True
    return who is Who.OBSERVER and actor.role == UserRole.VIEWER


def owner_filter(actor: Actor, resource: Resource) -> int | None:
    """None to list everyone's, else the id whose own items a listing keeps."""
    return None if sees_all(actor, resource) else actor.id


def may_enroll(actor: Actor) -> bool:
    """Whether enrolling is open to `actor` at all (from a mailbox of their own): what
    pages ask before offering an Enroll button or dialog; the service asks again with
    the mailbox actually chosen."""
    return may(actor, Resource.ENROLLMENT, Action.CREATE, [actor.id])


def may_override_enrollment_rules(actor: Actor) -> bool:
    """Whether `actor` may enroll a contact an enrollment rule refuses: admins, and
    members granted *can override enrollment rules*."""
    return may(actor, Resource.ENROLLMENT_RULE, Action.UPDATE)


def is_admin(actor: Actor) -> bool:
    return actor.role == UserRole.ADMIN


def may_write(actor: Actor) -> bool:
    """Whether pages offer any change at all (viewers get read-only pages)."""
    return actor.role != UserRole.VIEWER


ROLE_CHECKS = {Who.WRITER: may_write, Who.ADMIN: is_admin}


def check_role(actor: Actor, who: Who) -> None:
    """The role guards the API and the web pages put in front of whole areas: changing
    anything at all (`Who.WRITER`) or the admins' settings (`Who.ADMIN`). The one place
    that decides it, whichever way the user was found (a token or a session cookie)."""
    if not ROLE_CHECKS[who](actor):
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, ROLE_REFUSALS[who])


def shared_may(
    actor: Actor, resource: Resource, action: Action, owner_id: int | None, sharing: str
) -> bool:
    """`may`, with the owners a shared item has for `action` (`shared_owners`)."""
    return may(actor, resource, action, shared_owners(owner_id, sharing, action))


def check_shared(
    actor: Actor,
    resource: Resource,
    action: Action,
    owner_id: int | None,
    sharing: str,
    *,
    hidden_as: CadenzaError,
) -> None:
    """`shared_may` or a refusal: what the actor cannot even read is `hidden_as` (not
    found), what they read but may not change is permission_denied."""
    if shared_may(actor, resource, action, owner_id, sharing):
        return
    if not shared_may(actor, resource, Action.READ, owner_id, sharing):
        raise hidden_as
    who = RULES.get((resource, action), Who.ADMIN)
    raise CadenzaError(ErrorCode.PERMISSION_DENIED, _denied(resource, action, who))
