"""Static and active lists: membership, the filter language, events on both databases."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.errors import CadenzaError
from cadenza.services.crm import contacts, lists, records
from cadenza.services.crm.records import AssociationIn
from cadenza.store.models import AutomationEvent
from tests.conftest import backend_independent, code_of


def member_emails(ctx, list_id):
    return sorted(c.email for c in lists.members(ctx, list_id, limit=500))


def test_static_list_add_and_remove(ctx, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    static = lists.create_list(ctx, None, "Hand picked", "static").contact_list
    assert lists.change_members(ctx, None, static.id, add=[ann.id, bob.id])["size"] == 2
    assert lists.change_members(ctx, None, static.id, add=[ann.id])["added"] == 0  # idempotent
    assert lists.change_members(ctx, None, static.id, remove=[bob.id])["removed"] == 1
    assert member_emails(ctx, static.id) == ["ann@corp.example"]
    # an unknown contact refuses the whole change: nothing half-written
    assert code_of(lists.change_members, ctx, None, static.id, add=[bob.id, 999_999]) == (
        "contact_not_found"
    )
    assert member_emails(ctx, static.id) == ["ann@corp.example"]
    assert code_of(lists.create_list, ctx, None, "x", "static", {"all": []}) == "validation_error"
    assert code_of(lists.create_list, ctx, None, "x", "smart") == "validation_error"
    assert code_of(lists.update_list, ctx, None, static.id, {"filters": None}) == "invalid_state"


def test_active_list_follows_contact_changes(ctx, world, clock):
    pro = lists.create_list(
        ctx, None, "Pro plan", "active",
        {"all": [{"property": "plan", "op": "equals", "value": "PRO"}]},
    ).contact_list  # fmt: skip
    ann = world.contact("ann@corp.example", properties={"plan": "pro"})
    bob = world.contact("bob@corp.example", properties={"plan": "free"})
    assert member_emails(ctx, pro.id) == ["ann@corp.example"]
    contacts.update_contact(ctx, bob.id, {"properties": {"plan": "pro"}})
    contacts.update_contact(ctx, ann.id, {"properties": {"plan": None}})
    assert member_emails(ctx, pro.id) == ["bob@corp.example"]
    with pytest.raises(CadenzaError):
        contacts.update_contact(
            ctx, ann.id, {"email": "not an address", "properties": {"plan": "pro"}}
        )
    assert member_emails(ctx, pro.id) == ["bob@corp.example"]  # a failed change moves nobody
    assert code_of(lists.change_members, ctx, None, pro.id, add=[ann.id]) == "invalid_state"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"property": "email", "op": "contains", "value": "@ACME"}, ["ann@acme.example"]),
        ({"property": "jobtitle", "op": "is_known"}, ["ann@acme.example"]),
        ({"property": "jobtitle", "op": "is_unknown"}, ["bob@corp.example"]),
        ({"property": "score", "op": "greater_than", "value": 50}, ["ann@acme.example"]),
        ({"property": "score", "op": "less_than", "value": "50"}, ["bob@corp.example"]),
        ({"property": "score", "op": "not_equals", "value": 80}, ["bob@corp.example"]),
        ({"property": "demo_on", "op": "in_last_days", "value": 7}, ["bob@corp.example"]),
        ({"property": "demo_on", "op": "greater_than", "value": "2026-01-01"},
         ["bob@corp.example"]),
        ({"property": "created_at", "op": "in_last_days", "value": 0},
         ["ann@acme.example", "bob@corp.example"]),
    ],
)  # fmt: skip
def test_filter_operators(ctx, world, condition, expected):
    world.contact(
        "ann@acme.example", jobtitle="CTO", properties={"score": 80, "demo_on": "2025-12-01"}
    )
    world.contact("bob@corp.example", properties={"score": "20", "demo_on": "2026-02-27"})
    active = lists.create_list(ctx, None, "t", "active", {"all": [condition]}).contact_list
    assert member_emails(ctx, active.id) == expected


def test_and_or_groups_and_associated_record_conditions(ctx, world):
    ann = world.contact("ann@corp.example", jobtitle="CTO")
    bob = world.contact("bob@corp.example", jobtitle="Intern")
    world.contact("eve@corp.example", jobtitle="CTO")
    acme = records.create_record(
        ctx, None, "company", name="Acme", properties={"industry": "Software"},
        associations=[AssociationIn(ann.id), AssociationIn(bob.id)],
    ).record  # fmt: skip
    filters = {
        "all": [
            {"object": "company", "property": "industry", "op": "equals", "value": "software"},
            {"any": [
                {"property": "jobtitle", "op": "equals", "value": "CTO"},
                {"property": "jobtitle", "op": "contains", "value": "vp"},
            ]},
        ]
    }  # fmt: skip
    software_ctos = lists.create_list(ctx, None, "Software CTOs", "active", filters).contact_list
    assert member_emails(ctx, software_ctos.id) == ["ann@corp.example"]
    contacts.update_contact(ctx, bob.id, {"jobtitle": "VP Sales"})
    assert member_emails(ctx, software_ctos.id) == ["ann@corp.example", "bob@corp.example"]
    records.update_record(ctx, None, "company", acme.id, {"properties": {"industry": "Retail"}})
    assert member_emails(ctx, software_ctos.id) == []  # a record change moves its contacts
    records.update_record(ctx, None, "company", acme.id, {"properties": {"industry": "Software"}})
    records.dissociate(ctx, None, acme.id, ann.id)
    assert member_emails(ctx, software_ctos.id) == ["bob@corp.example"]
    records.delete_record(ctx, None, "company", acme.id)
    assert member_emails(ctx, software_ctos.id) == []


@backend_independent
@pytest.mark.parametrize(
    "bad",
    [
        {"all": []},
        {"every": [{"property": "x", "op": "equals", "value": 1}]},
        {"all": [{"property": "x", "op": "like", "value": 1}]},
        {"all": [{"property": "x", "op": "is_known", "value": 1}]},
        {"all": [{"property": "x", "op": "equals"}]},
        {"all": [{"property": "x", "op": "in_last_days", "value": -1}]},
        {"all": [{"object": "planet", "property": "x", "op": "is_known"}]},
        {"all": [{"property": "x", "op": "equals", "value": 1, "extra": 2}]},
        {"all": [{"all": [{"all": [{"all": [{"all": [{"all": [
            {"property": "x", "op": "is_known"}]}]}]}]}]}]},
        "plan = pro",
    ],
)  # fmt: skip
def test_invalid_filters_are_refused(ctx, world, bad):
    assert code_of(lists.create_list, ctx, None, "bad", "active", bad) == "validation_error"
    assert lists.list_lists(ctx, limit=10) == []


def test_membership_changes_are_events_when_a_rule_listens(ctx, world, clock):
    from cadenza.services.automation import rules as automation_rules

    pro = lists.create_list(
        ctx, None, "Pro", "active", {"all": [{"property": "plan", "op": "equals", "value": "pro"}]}
    ).contact_list
    automation_rules.create_rule(
        ctx, None, name="watch", sequence_id=world.sequence.id,
        trigger={"type": "list_removed", "list_id": pro.id},
        action={"type": "unenroll", "scope": "all"},
    )  # fmt: skip
    ann = world.contact("ann@corp.example", properties={"plan": "pro"})
    clock.advance(timedelta(minutes=1))
    contacts.update_contact(ctx, ann.id, {"properties": {"plan": "free"}})
    with ctx.db.read() as session:
        events = list(session.scalars(select(AutomationEvent).order_by(AutomationEvent.id)))
    # only the listened-for type is written: list_added is not, list_removed is
    assert [(e.type, e.contact_id, e.data) for e in events] == [
        ("list_removed", ann.id, {"list_id": pro.id})
    ]
