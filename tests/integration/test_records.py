"""Object types, records, associations and enrolling from a record, on both databases."""

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.crm import records
from cadenza.services.crm.records import AssociationIn
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from tests.conftest import code_of


def test_builtin_types_are_seeded_by_the_migration(ctx):
    types = {t.name: t for t in records.list_types(ctx)}
    assert {"company", "deal", "ticket"} <= set(types)
    assert types["company"].plural == "companies" and types["company"].builtin
    assert {p["name"] for p in types["deal"].properties} >= {"amount", "stage", "close_date"}


def test_custom_type_with_typed_properties(ctx, world):
    boat = records.create_type(
        ctx, None, name="boat", plural="boats",
        properties=[
            {"name": "length", "type": "number"},
            {"name": "launched", "type": "date"},
            {"name": "sails", "type": "bool"},
            {"name": "hull", "type": "enum", "options": ["wood", "steel"]},
            {"name": "notes", "type": "string"},
        ],
    )  # fmt: skip
    assert records.get_type(ctx, "boats").id == boat.id
    view = records.create_record(
        ctx, None, "boat", name="Aurora",
        properties={"length": "12.5", "launched": "2020-05-01", "sails": "yes", "hull": "wood"},
    )  # fmt: skip
    assert view.record.properties == {
        "length": 12.5, "launched": "2020-05-01", "sails": True, "hull": "wood",
    }  # fmt: skip
    for bad in ({"length": "long"}, {"launched": "May"}, {"sails": "maybe"}, {"hull": "glass"},
                {"colour": "red"}):  # fmt: skip
        assert code_of(records.create_record, ctx, None, "boat", name="X", properties=bad) == (
            "validation_error"
        )
    assert code_of(records.create_type, ctx, None, name="boat", plural="vessels") == "conflict"
    assert code_of(records.create_type, ctx, None, name="Bad Name", plural="x") == (
        "validation_error"
    )
    assert code_of(
        records.create_type, ctx, None, name="car", plural="cars",
        properties=[{"name": "kind", "type": "enum"}],
    ) == "validation_error"  # fmt: skip
    assert code_of(records.delete_type, ctx, None, "boat") == "invalid_state"  # has a record
    assert code_of(records.delete_type, ctx, None, "company") == "invalid_state"  # built in


def test_records_search_and_update(ctx, world):
    acme = records.create_record(ctx, None, "company", name="Acme", properties={"city": "Oslo"})
    records.create_record(ctx, None, "company", name="Globex", properties={"city": "Rome"})
    _, found = records.search_records(ctx, "companies", "acm")
    assert [r.name for r in found] == ["Acme"]
    _, found = records.search_records(ctx, "company", properties={"city": "Rome"})
    assert [r.name for r in found] == ["Globex"]
    _, page = records.search_records(ctx, "company", limit=1, after_id=acme.record.id)
    assert [r.name for r in page] == ["Globex"]
    updated = records.update_record(
        ctx, None, "company", acme.record.id, {"properties": {"city": None, "employees": 40}}
    )
    assert updated.record.properties == {"employees": 40}
    assert code_of(records.get_record, ctx, "deal", acme.record.id) == "not_found"  # wrong type
    assert code_of(records.get_record, ctx, "planet", 1) == "not_found"


def test_associations_many_to_many_with_one_primary(ctx, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    acme = records.create_record(
        ctx, None, "company", name="Acme",
        associations=[AssociationIn(ann.id, primary=True), AssociationIn(bob.id)],
    ).record  # fmt: skip
    deal = records.create_record(ctx, None, "deal", name="Big deal").record
    records.associate(ctx, None, deal.id, ann.id)
    view = records.get_record(ctx, "company", acme.id)
    assert [(a.contact_id, a.is_primary) for a in view.associations] == [
        (ann.id, True), (bob.id, False),
    ]  # fmt: skip
    records.associate(ctx, None, acme.id, bob.id, primary=True)  # the primary moves
    view = records.get_record(ctx, "company", acme.id)
    assert [(a.contact_id, a.is_primary) for a in view.associations] == [
        (bob.id, True), (ann.id, False),
    ]  # fmt: skip
    of_ann = records.list_associations(ctx, contact_id=ann.id)
    assert sorted(name for _, _, name in of_ann) == ["company", "deal"]
    assert code_of(records.associate, ctx, None, acme.id, 999_999) == "contact_not_found"
    assert code_of(
        records.create_record, ctx, None, "company", name="Two primaries",
        associations=[AssociationIn(ann.id, True), AssociationIn(bob.id, True)],
    ) == "validation_error"  # fmt: skip
    records.dissociate(ctx, None, acme.id, bob.id)
    assert code_of(records.dissociate, ctx, None, acme.id, bob.id) == "not_found"


def _from_record(world, record_type, record_id, contact_ids=()):
    return enroll(
        world.ctx,
        EnrollRequest(
            sequence_id=world.sequence.id,
            user_id=world.user.id,
            contacts=[ContactRequest(c) for c in contact_ids],
            record_type=record_type,
            record_id=record_id,
        ),
    )


def test_enroll_from_a_record_through_its_associated_contacts(ctx, world):
    ann, bob, eve = (world.contact(f"{n}@corp.example") for n in ("ann", "bob", "eve"))
    empty = records.create_record(ctx, None, "company", name="Nobody Inc").record
    assert code_of(_from_record, world, "company", empty.id) == "no_associated_contact"

    acme = records.create_record(
        ctx, None, "company", name="Acme",
        associations=[AssociationIn(ann.id, True), AssociationIn(bob.id)],
    ).record  # fmt: skip
    with pytest.raises(CadenzaError) as caught:
        _from_record(world, "company", acme.id)
    assert caught.value.code == "associated_contact_required"
    assert [c["contact_id"] for c in caught.value.details["contacts"]] == [ann.id, bob.id]

    [result, stranger] = _from_record(world, "company", acme.id, [bob.id, eve.id])
    assert result.ok and stranger.code == "not_associated"
    view = records.get_record(ctx, "company", acme.id)
    assert [(e.contact_id, e.source_record_id) for e in view.enrollments] == [(bob.id, acme.id)]

    deal = records.create_record(
        ctx, None, "deal", name="Solo", associations=[AssociationIn(eve.id)]
    ).record
    [only] = _from_record(world, "deal", deal.id)  # one associated contact: no choice needed
    assert only.ok and only.contact_id == eve.id
    [again] = _from_record(world, "deal", deal.id)
    assert again.code == "already_enrolled"
    [direct] = _from_record(world, "contact", ann.id)
    assert direct.ok
    assert code_of(_from_record, world, "contact", 999_999) == "contact_not_found"
    assert code_of(_from_record, world, "planet", 1) == "not_found"

    records.delete_record(ctx, None, "company", acme.id)  # enrollments forget their source
    from cadenza.services.enrollment.views import get_enrollment

    assert get_enrollment(ctx, result.enrollment_id).enrollment.source_record_id is None


def test_deleting_a_contact_takes_its_associations_and_memberships(ctx, world):
    from cadenza.services.crm import contacts, lists

    ann = world.contact("ann@corp.example")
    acme = records.create_record(
        ctx, None, "company", name="Acme", associations=[AssociationIn(ann.id, True)]
    ).record
    static = lists.create_list(ctx, None, "L", "static").contact_list
    lists.change_members(ctx, None, static.id, add=[ann.id])
    contacts.delete_contact(ctx, ann.id)
    assert records.get_record(ctx, "company", acme.id).associations == []
    assert lists.get_list(ctx, static.id).size == 0
