"""Use cases that used to check roles on their own now ask the one policy, in their own
transaction, of the acting user as stored now (a role changed a moment ago counts).
On both databases."""

import pytest

from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts import users
from cadenza.services.accounts.users import create_token, create_user, list_tokens, update_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.signals import events
from cadenza.store.models import Contact, User


def refused(code, call, *args, **kwargs):
    with pytest.raises(CadenzaError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message


def stored(ctx, model, row_id):
    with ctx.db.read() as session:
        return session.get(model, row_id)


@pytest.fixture
def admins(ctx):
    """Two admins, so one can be demoted (the last admin stays admin)."""
    return create_user(ctx, "ada@example.com", role="admin"), create_user(
        ctx, "abe@example.com", role="admin"
    )


def test_undoing_an_event_asks_the_role_as_stored_now(ctx, world, admins):
    contact = world.contact()
    mistake = events.ExternalEvent(EventKind.UNSUBSCRIBE, "oops-1", contact_email=contact.email)
    event_id = events.receive(ctx, mistake).event_id
    demoted = stored(ctx, User, admins[0].id)  # loaded while still an admin
    update_user(ctx, demoted.id, role="member", actor_id=admins[1].id)
    refused("permission_denied", events.revoke, ctx, demoted, event_id, "typo")
    refused("permission_denied", events.revoke, ctx, world.user, event_id, "typo")
    assert stored(ctx, Contact, contact.id).unsubscribed_at is not None
    events.revoke(ctx, stored(ctx, User, admins[1].id), event_id, "wrong contact")
    assert stored(ctx, Contact, contact.id).unsubscribed_at is None


def test_a_users_tokens_are_revoked_by_that_user_or_an_admin(ctx, world, admins):
    owner, other = world.user, create_user(ctx, "bea@example.com")
    first = create_token(ctx, owner.id, "laptop")
    create_token(ctx, owner.id, "phone")
    refused("permission_denied", users.revoke_all_tokens, ctx, owner.id, actor_id=other.id)
    refused("permission_denied", users.revoke_token, ctx, owner.id, first.id, actor_id=other.id)
    assert all(t.revoked_at is None for t in list_tokens(ctx, owner.id))
    users.revoke_token(ctx, owner.id, first.id, actor_id=owner.id)
    assert users.revoke_all_tokens(ctx, owner.id, actor_id=admins[0].id) == 1
    assert all(t.revoked_at is not None for t in list_tokens(ctx, owner.id))


def test_only_admins_deactivate_a_user(ctx, world, admins):
    member = create_user(ctx, "bea@example.com")
    viewer = create_user(ctx, "vic@example.com", role="viewer")
    for actor in (member, viewer):
        refused("permission_denied", users.set_active, ctx, world.user.id, False, actor.id)
    assert stored(ctx, User, world.user.id).deactivated_at is None
    users.set_active(ctx, world.user.id, False, actor_id=admins[0].id)
    assert stored(ctx, User, world.user.id).deactivated_at is not None


def test_automation_rules_are_changed_by_admins_as_stored_now(ctx, world, admins):
    rule_of = {
        "name": "Welcome",
        "sequence_id": world.sequence.id,
        "trigger": {"type": "contact_created"},
        "action": {"type": "enroll", "user_id": world.user.id},
    }
    refused("permission_denied", automation_rules.create_rule, ctx, world.user.id, **rule_of)
    rule = automation_rules.create_rule(ctx, admins[0].id, **rule_of)
    update_user(ctx, admins[0].id, role="member", actor_id=admins[1].id)
    for actor in (admins[0].id, world.user.id):
        refused(
            "permission_denied",
            automation_rules.update_rule,
            ctx,
            actor,
            rule.id,
            {"enabled": False},
        )
        refused("permission_denied", automation_rules.delete_rule, ctx, actor, rule.id)
    assert automation_rules.update_rule(ctx, admins[1].id, rule.id, {"enabled": False})
    automation_rules.delete_rule(ctx, admins[1].id, rule.id)
