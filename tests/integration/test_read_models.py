"""What the services hand the web app and the CLI: frozen read models, never ORM rows
(docs/architecture/reads.md), on both databases.

A row handed out would let a page lazy-load after its session closed, or a change to it
look saved; a read model is plain values, copied while the session was open.
"""

from dataclasses import FrozenInstanceError, is_dataclass

import pytest

from cadenza.domain.webhooks import EVENT_TYPES
from cadenza.services.accounts import mailboxes, users
from cadenza.services.automation import rules
from cadenza.services.crm import contact_index, contacts, lists, records
from cadenza.services.crm.records import AssociationIn
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import list_jobs, tasks, views
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.events_out import webhooks
from cadenza.services.sequences import catalog
from cadenza.services.signals import events, inbox_cursors
from cadenza.store.models import Base

HOOK_URL = "https://hooks.example.com/x"


def _first(found):
    return found[0] if found else None


def _reads(ctx, world):
    """One value of every read the web app or the CLI makes, after a small story."""
    ann = world.contact("ann@corp.example", properties={"plan": "pro"})
    enroll(ctx, EnrollRequest(world.sequence.id, world.user.id, [ContactRequest(ann.id)]))
    hand_picked = lists.create_list(ctx, None, "Hand picked", "static")
    lists.change_members(ctx, None, hand_picked.contact_list.id, add=[ann.id])
    acme = records.create_record(
        ctx, None, "company", name="Acme", associations=[AssociationIn(ann.id, True)]
    )
    hook, _secret = webhooks.create_webhook(ctx, None, HOOK_URL, [EVENT_TYPES[0]])
    users.create_token(ctx, world.user.id, "laptop")
    job = list_jobs.start(ctx, world.user.id, hand_picked.contact_list.id, world.sequence.id)
    rule = rules.create_rule(
        ctx, None, name="Welcome", sequence_id=world.sequence.id,
        trigger={"type": "list_added", "list_id": hand_picked.contact_list.id},
        action={"type": "enroll", "user_id": world.user.id},
    )  # fmt: skip
    [summary] = views.list_enrollments(ctx)
    view = views.get_enrollment(ctx, summary.id)
    found_type, found_records = records.search_records(ctx, "company")
    return {
        "user": users.list_users(ctx)[0],
        "user by email": users.find_user_by_email(ctx, world.user.email),
        "token": users.list_tokens(ctx, world.user.id)[0],
        "contact": contacts.get_contact(ctx, ann.id),
        "contact search": contacts.search_contacts(ctx, "ann").results[0],
        "contact index": contact_index.browse_contacts(ctx, contact_index.ContactFilter()).contacts[
            0
        ],
        "sequence": catalog.get_sequence(ctx, world.sequence.id),
        "step": catalog.get_sequence(ctx, world.sequence.id).steps[0],
        "mailbox": mailboxes.list_mailboxes(ctx)[0],
        "enrollment summary": summary,
        "enrollment view head": view.enrollment,
        "list": hand_picked.contact_list,
        "list member": lists.members(ctx, hand_picked.contact_list.id, limit=10)[0],
        "object type": found_type,
        "record": found_records[0],
        "record view": records.get_record(ctx, "company", acme.record.id),
        "record view head": acme.record,
        "list view": hand_picked,
        "enrollment view": view,
        "association": acme.associations[0],
        "webhook": webhooks.get_webhook(ctx, hook.id),
        "rule": rules.get_rule(ctx, rule.id),
        "waiting step": outbox.list_waiting(ctx)[0],
        "job": list_jobs.get_job(ctx, job.id),
        "delivery": webhooks.send_test(ctx, hook.id),
        "task": _first(tasks.list_tasks(ctx)),
        "event": _first(events.list_events(ctx)),
        "inbox cursor": _first(inbox_cursors.list_cursors(ctx)),
    }


def test_reads_hand_out_frozen_read_models_not_rows(ctx, world):
    handed = {name: value for name, value in _reads(ctx, world).items() if value is not None}
    assert len(handed) >= 25  # the story above made something for most reads
    for name, value in handed.items():
        assert not isinstance(value, Base), f"{name} is an ORM row"
        assert is_dataclass(value), f"{name} is a {type(value).__name__}"
        with pytest.raises(FrozenInstanceError):
            value.id = 0  # type: ignore[misc]


def test_read_models_leave_secrets_and_keys_inside(ctx, world):
    user = users.find_user_by_email(ctx, world.user.email)
    hook, secret = webhooks.create_webhook(ctx, None, HOOK_URL, [EVENT_TYPES[0]])
    assert not hasattr(user, "password_hash")
    assert not hasattr(hook, "secret")
    assert secret not in repr(webhooks.list_webhooks(ctx))
    tokens = users.create_token(ctx, world.user.id, "laptop")
    [listed] = users.list_tokens(ctx, world.user.id)
    assert listed.id == tokens.id and not hasattr(listed, "token_hash")


def test_a_read_model_does_not_share_its_values_with_the_database(ctx, world):
    ann = world.contact("ann@corp.example", properties={"plan": "pro"})
    shown = contacts.get_contact(ctx, ann.id)
    shown.properties["plan"] = "changed on a page"
    assert contacts.get_contact(ctx, ann.id).properties == {"plan": "pro"}
