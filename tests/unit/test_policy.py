"""The access policy's rules, as pure functions (docs/security.md has the table)."""

from dataclasses import dataclass

import pytest

from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import (
    EVERYONE,
    FLAGS,
    RULES,
    Action,
    Resource,
    Who,
    check,
    may,
    may_enroll,
    owner_filter,
    sees_all,
    shared_for,
    shared_owners,
)
from tests.support.people import ADMIN, ANN, BEA, VIC, Person


def test_every_resource_has_a_read_rule():
    assert {r for r, a in RULES if a is Action.READ} == set(Resource)


@pytest.mark.parametrize(("resource", "action"), sorted(RULES))
def test_an_admin_may_do_anything_and_a_viewer_never_writes_what_is_not_theirs(resource, action):
    assert may(ADMIN, resource, action, [ANN.id])
    viewer_may = may(VIC, resource, action, [ANN.id])
    if action is not Action.READ:
        assert not viewer_may
    assert may(VIC, resource, action, [VIC.id]) == (
        RULES[(resource, action)] is Who.SELF
        or (action is Action.READ and RULES[(resource, action)] is not Who.ADMIN)
    )


def test_a_member_changes_only_their_own_sequence_and_reads_what_is_shared():
    assert may(ANN, Resource.SEQUENCE, Action.UPDATE, [ANN.id])
    assert may(ANN, Resource.SEQUENCE, Action.DELETE, [ANN.id])
    assert not may(BEA, Resource.SEQUENCE, Action.UPDATE, [ANN.id])
    assert not may(BEA, Resource.SEQUENCE, Action.DELETE, [ANN.id])
    assert not may(BEA, Resource.SEQUENCE, Action.READ, [ANN.id])  # private
    assert may(BEA, Resource.SEQUENCE, Action.READ, [ANN.id, EVERYONE])


@pytest.mark.parametrize(
    ("sharing", "team_reads", "team_edits"),
    [(Sharing.PRIVATE, False, False), (Sharing.TEAM_USE, True, False),
     (Sharing.TEAM_EDIT, True, True)],
)  # fmt: skip
def test_a_sequences_sharing_opens_reading_then_editing_never_archiving_or_sharing(
    sharing, team_reads, team_edits
):
    def owners(action):
        return shared_owners(ANN.id, sharing, action)

    assert may(BEA, Resource.SEQUENCE, Action.READ, owners(Action.READ)) is team_reads
    assert may(VIC, Resource.SEQUENCE, Action.READ, owners(Action.READ)) is team_reads
    assert may(BEA, Resource.SEQUENCE, Action.UPDATE, owners(Action.UPDATE)) is team_edits
    assert not may(VIC, Resource.SEQUENCE, Action.UPDATE, owners(Action.UPDATE))
    for action in (Action.DELETE, Action.SHARE):
        assert not may(BEA, Resource.SEQUENCE, action, owners(action))
        assert may(ANN, Resource.SEQUENCE, action, owners(action))
        assert may(ADMIN, Resource.SEQUENCE, action, owners(action))
    assert shared_for(Action.READ) == [Sharing.TEAM_USE, Sharing.TEAM_EDIT]


def test_an_enrollment_is_its_enrollers_and_its_mailbox_owners():
    owners = [ANN.id, BEA.id]  # Bea enrolled, from Ann's mailbox
    assert may(ANN, Resource.ENROLLMENT, Action.UPDATE, owners)
    assert may(BEA, Resource.ENROLLMENT, Action.UPDATE, owners)
    assert not may(Person(5, "member"), Resource.ENROLLMENT, Action.UPDATE, owners)
    assert may(VIC, Resource.ENROLLMENT, Action.READ, owners)


def test_a_team_owned_list_is_changed_only_by_admins():
    assert not may(ANN, Resource.LIST, Action.UPDATE, [None])
    assert may(ADMIN, Resource.LIST, Action.UPDATE, [None])
    assert may(ANN, Resource.LIST, Action.READ, [None])


def test_a_private_resource_of_someone_else_is_hidden_a_shared_one_refused():
    hidden = CadenzaError(ErrorCode.NOT_FOUND, "task 9 does not exist")
    with pytest.raises(CadenzaError) as caught:
        check(BEA, Resource.TASK, Action.UPDATE, [ANN.id], hidden_as=hidden)
    assert caught.value is hidden
    with pytest.raises(CadenzaError) as caught:  # a viewer may see their own task...
        check(VIC, Resource.TASK, Action.UPDATE, [VIC.id], hidden_as=hidden)
    assert caught.value.code == ErrorCode.PERMISSION_DENIED  # ...so is told no, not 404
    with pytest.raises(CadenzaError) as caught:
        check(BEA, Resource.LIST, Action.UPDATE, [ANN.id], hidden_as=hidden)
    assert caught.value.code == ErrorCode.PERMISSION_DENIED
    with pytest.raises(CadenzaError) as caught:  # a private sequence is hidden
        check(BEA, Resource.SEQUENCE, Action.UPDATE, [ANN.id], hidden_as=hidden)
    assert caught.value is hidden


def test_listings_are_narrowed_to_what_the_actor_may_read():
    assert owner_filter(ANN, Resource.TASK) == ANN.id
    assert owner_filter(ADMIN, Resource.TASK) is None
    assert owner_filter(VIC, Resource.ENROLLMENT) is None  # viewers read every enrollment
    assert owner_filter(ANN, Resource.ENROLLMENT) == ANN.id
    assert sees_all(ANN, Resource.CONTACT)


def test_an_action_without_a_rule_is_refused_even_to_an_admin():
    """A new action must be added to the table before anyone can use it."""
    assert (Resource.STEP, Action.DELETE) not in RULES
    assert not may(ADMIN, Resource.STEP, Action.DELETE, [ADMIN.id])


def test_enrolling_is_from_ones_own_mailbox_with_the_enroll_permission():
    own, theirs = [ANN.id], [BEA.id]
    assert may(ANN, Resource.ENROLLMENT, Action.CREATE, own)
    assert not may(ANN, Resource.ENROLLMENT, Action.CREATE, theirs)
    assert may(ADMIN, Resource.ENROLLMENT, Action.CREATE, theirs)  # from anyone's mailbox
    assert not may(VIC, Resource.ENROLLMENT, Action.CREATE, [VIC.id])  # viewers never
    barred = [Person(ANN.id, "member", can_enroll=False), Person(1, "admin", can_enroll=False)]
    for person in barred:  # the permission binds admins too
        assert not may(person, Resource.ENROLLMENT, Action.CREATE, [person.id])
        assert not may_enroll(person)
    assert may_enroll(ANN) and may_enroll(ADMIN) and not may_enroll(VIC)


def test_an_actor_without_a_flag_is_refused_what_needs_it():
    @dataclass
    class Bare:
        id: int
        role: str

    assert FLAGS[(Resource.ENROLLMENT, Action.CREATE)] == "can_enroll"
    assert not may(Bare(1, "admin"), Resource.ENROLLMENT, Action.CREATE, [1])
    assert may(Bare(1, "admin"), Resource.ENROLLMENT, Action.UPDATE, [2])


def test_automation_rules_are_read_by_all_and_changed_by_admins():
    for action in (Action.CREATE, Action.UPDATE, Action.DELETE):
        assert may(ADMIN, Resource.AUTOMATION_RULE, action)
        assert not may(ANN, Resource.AUTOMATION_RULE, action, [ANN.id])
    assert may(VIC, Resource.AUTOMATION_RULE, Action.READ)


def test_sharing_opens_a_template_to_read_and_to_edit_but_never_to_reshare():
    from cadenza.domain.enums import Sharing
    from cadenza.domain.policy import shared_may

    T = Resource.TEMPLATE
    for action in (Action.READ, Action.UPDATE, Action.DELETE):
        assert shared_may(ANN, T, action, ANN.id, Sharing.PRIVATE)
        assert shared_may(ADMIN, T, action, ANN.id, Sharing.PRIVATE)
        assert not shared_may(BEA, T, action, ANN.id, Sharing.PRIVATE)
        assert not shared_may(VIC, T, action, ANN.id, Sharing.PRIVATE)
    assert shared_may(BEA, T, Action.READ, ANN.id, Sharing.TEAM_USE)
    assert shared_may(VIC, T, Action.READ, ANN.id, Sharing.TEAM_USE)
    assert not shared_may(BEA, T, Action.UPDATE, ANN.id, Sharing.TEAM_USE)
    assert shared_may(BEA, T, Action.UPDATE, ANN.id, Sharing.TEAM_EDIT)
    assert not shared_may(VIC, T, Action.UPDATE, ANN.id, Sharing.TEAM_EDIT)
    assert not shared_may(BEA, T, Action.DELETE, ANN.id, Sharing.TEAM_EDIT)
