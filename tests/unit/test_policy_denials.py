"""What the access policy tells a refused user, and its smaller questions (domain/policy.py).

The refusal's text is what the API's error and the web app's notice show, so it is
part of the behaviour: it names the resource and the action, or says who may.
"""

import pytest

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import (
    Action,
    Resource,
    Who,
    check,
    check_role,
    check_shared,
    is_admin,
    may,
    may_override_enrollment_rules,
    may_write,
    owner_filter,
    sees_all,
)
from tests.support.people import ADMIN, ANN, BEA, VIC, Person

NOT_FOUND = CadenzaError(ErrorCode.NOT_FOUND, "no such template")


def refusal(actor, resource, action, owners=()) -> CadenzaError:
    with pytest.raises(CadenzaError) as caught:
        check(actor, resource, action, owners)
    assert caught.value.code == ErrorCode.PERMISSION_DENIED
    return caught.value


@pytest.mark.parametrize(
    ("actor", "resource", "action", "owners", "message"),
    [
        (ANN, Resource.WEBHOOK, Action.CREATE, [], "only admins can do this"),
        (VIC, Resource.CONTACT, Action.UPDATE, [], "viewers can read but not change anything"),
        (
            BEA,
            Resource.SEQUENCE,
            Action.UPDATE,
            [ANN.id],
            "this sequence belongs to another user: only its owner or an admin can update it",
        ),
        (
            BEA,
            Resource.LIST_ENROLL_JOB,
            Action.READ,
            [ANN.id],
            "this list enroll job belongs to another user: only its owner or an admin can read it",
        ),
        (
            BEA,
            Resource.USER,
            Action.READ,
            [ANN.id],
            "this user belongs to another user: only its owner or an admin can read it",
        ),
        # An action with no rule is refused as if it were for admins only.
        (ADMIN, Resource.STEP, Action.DELETE, [ADMIN.id], "only admins can do this"),
    ],
)
def test_a_refusal_says_why(actor, resource, action, owners, message):
    assert refusal(actor, resource, action, owners).message == message


def test_an_owner_among_others_is_an_owner_and_a_missing_owner_is_nobody():
    assert may(ANN, Resource.LIST, Action.UPDATE, [None, ANN.id])
    assert not may(ANN, Resource.LIST, Action.UPDATE, [None, BEA.id])
    assert may(ANN, Resource.ENROLLMENT, Action.UPDATE, iter([BEA.id, ANN.id]))


def test_a_viewer_reads_what_is_theirs_and_nothing_of_another_members():
    assert may(VIC, Resource.TASK, Action.READ, [VIC.id])
    assert not may(VIC, Resource.TASK, Action.READ, [ANN.id])
    assert not may(VIC, Resource.TASK, Action.UPDATE, [VIC.id])
    assert may(VIC, Resource.USER, Action.READ, [VIC.id])  # their own account
    assert not may(VIC, Resource.USER, Action.READ, [ANN.id])
    assert may(VIC, Resource.LIST_ENROLL_JOB, Action.READ, [ANN.id])  # shared with viewers


def test_a_role_the_policy_does_not_know_gets_nothing_it_must_own():
    stranger = Person(7, "auditor")
    assert not may(stranger, Resource.TASK, Action.READ, [stranger.id])
    assert not may(stranger, Resource.CONTACT, Action.CREATE)
    assert may(stranger, Resource.CONTACT, Action.READ)  # what anyone signed in reads


@pytest.mark.parametrize(
    ("actor", "resource", "everyone"),
    [
        (ADMIN, Resource.TASK, True),
        (ANN, Resource.TASK, False),
        (VIC, Resource.TASK, False),  # a viewer's tasks are their own
        (VIC, Resource.ENROLLMENT, True),
        (ANN, Resource.ENROLLMENT, False),
        (ANN, Resource.SEQUENCE, False),  # their own, and what is shared (shared_owners)
        (ANN, Resource.CONTACT, True),
        (VIC, Resource.WEBHOOK, False),
    ],
)
def test_who_sees_everyones_items_in_a_listing(actor, resource, everyone):
    assert sees_all(actor, resource) is everyone
    assert owner_filter(actor, resource) == (None if everyone else actor.id)


def test_admins_and_writers():
    assert is_admin(ADMIN) and not is_admin(ANN) and not is_admin(VIC)
    assert may_write(ADMIN) and may_write(ANN) and not may_write(VIC)


@pytest.mark.parametrize(
    ("who", "actor", "message"),
    [
        (Who.ADMIN, ANN, "only admins can do this"),
        (Who.WRITER, VIC, "viewers can read but not change anything"),
    ],
)
def test_a_role_guard_says_who_may(who, actor, message):
    with pytest.raises(CadenzaError) as caught:
        check_role(actor, who)
    assert (caught.value.code, caught.value.message) == (ErrorCode.PERMISSION_DENIED, message)
    check_role(ADMIN, who)  # passes


def shared_refusal(actor, action, sharing, owner=ANN) -> CadenzaError:
    with pytest.raises(CadenzaError) as caught:
        check_shared(actor, Resource.TEMPLATE, action, owner.id, sharing, hidden_as=NOT_FOUND)
    return caught.value


def test_a_shared_item_refuses_what_its_sharing_does_not_open_and_hides_what_it_does_not_show():
    """Bea reads Ann's template shared for use, but may not change it: permission
    denied, saying why. A private one she cannot even read: not found, as if it did not
    exist. Shared for editing, she may change it; deleting (archiving) stays Ann's."""
    used = shared_refusal(BEA, Action.UPDATE, "team_use")
    assert (used.code, used.message) == (
        ErrorCode.PERMISSION_DENIED,
        "this template belongs to another user: only its owner or an admin can update it",
    )
    assert shared_refusal(BEA, Action.UPDATE, "private") is NOT_FOUND
    assert shared_refusal(BEA, Action.READ, "private") is NOT_FOUND
    check_shared(BEA, Resource.TEMPLATE, Action.READ, ANN.id, "team_use", hidden_as=NOT_FOUND)
    check_shared(BEA, Resource.TEMPLATE, Action.UPDATE, ANN.id, "team_edit", hidden_as=NOT_FOUND)
    edited = shared_refusal(BEA, Action.DELETE, "team_edit")
    assert edited.message == (
        "this template belongs to another user: only its owner or an admin can delete it"
    )
    viewer = shared_refusal(VIC, Action.UPDATE, "team_edit")  # reads it, changes nothing
    assert (viewer.code, viewer.message) == (ErrorCode.PERMISSION_DENIED, used.message)
    check_shared(ANN, Resource.TEMPLATE, Action.DELETE, ANN.id, "private", hidden_as=NOT_FOUND)
    # a member made a viewer still sees their own private template, and may not change it
    own = shared_refusal(VIC, Action.UPDATE, "private", owner=VIC)
    assert own is not NOT_FOUND and own.code == ErrorCode.PERMISSION_DENIED


def test_a_shared_items_refusal_of_an_action_without_a_rule_is_for_admins_only():
    refused = shared_refusal(BEA, Action.SHARE, "team_edit")  # templates have no SHARE rule
    assert (refused.code, refused.message) == (
        ErrorCode.PERMISSION_DENIED,
        "only admins can do this",
    )


def test_overriding_enrollment_rules_is_for_admins_and_members_granted_it():
    granted = Person(5, "member", can_override_enrollment_rules=True)
    assert may_override_enrollment_rules(ADMIN)
    assert may_override_enrollment_rules(granted)
    assert not may_override_enrollment_rules(ANN)  # a member without the grant
    assert not may_override_enrollment_rules(
        Person(6, "viewer", can_override_enrollment_rules=True)
    )
    assert may(granted, Resource.ENROLLMENT_RULE, Action.UPDATE)
    assert not may(granted, Resource.WEBHOOK, Action.CREATE)  # the grant opens its one action


def test_an_actor_without_the_grants_column_is_granted_nothing():
    """As with FLAGS: a user-like value that lacks the column is refused, not an error."""
    from types import SimpleNamespace

    assert not may_override_enrollment_rules(SimpleNamespace(id=8, role="member"))
