"""What the access policy tells a refused user, and its smaller questions (domain/policy.py).

The refusal's text is what the API's error and the web app's notice show, so it is
part of the behaviour: it names the resource and the action, or says who may.
"""

import pytest

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import (
    Action,
    Resource,
    check,
    is_admin,
    may,
    may_write,
    owner_filter,
    sees_all,
)
from tests.support.people import ADMIN, ANN, BEA, VIC, Person


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
