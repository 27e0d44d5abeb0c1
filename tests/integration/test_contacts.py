"""Contacts CRUD and search through the services, on both databases."""

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.crm import contacts
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from tests.conftest import MISSING_ID


def fails(code, fn, *args, **kwargs):
    with pytest.raises(CadenzaError) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code
    return caught.value


def test_create_normalises_and_keeps_custom_properties(ctx):
    contact = contacts.create_contact(
        ctx,
        {"email": " Ann@Corp.EXAMPLE ", "firstname": "Ann", "timezone": "Asia/Kathmandu",
         "industry": "retail", "seats": 40},
    )  # fmt: skip
    stored = contacts.get_contact(ctx, contact.id)
    assert stored.email == "Ann@corp.example" and stored.email_key == "ann@corp.example"
    assert stored.properties == {"industry": "retail", "seats": 40}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"email": "not-an-address"}, "invalid_email"),
        ({"email": "a@b.example", "timezone": "Mars/Phobos"}, "invalid_timezone"),
        ({"email": "a@b.example", "firstname": "x" * 101}, "validation_error"),
        ({"email": "a@b.example", "properties": {"firstname": "x"}}, "validation_error"),
        ({"email": "a@b.example", "tags": ["a", "b"]}, "validation_error"),
        ({"email": 42}, "validation_error"),
    ],
)
def test_bad_contact_input_is_refused_and_nothing_written(ctx, data, code):
    fails(code, contacts.create_contact, ctx, data)
    assert contacts.search_contacts(ctx).results == []


def test_email_is_unique_case_insensitively(ctx):
    contacts.create_contact(ctx, {"email": "ann@corp.example"})
    fails("conflict", contacts.create_contact, ctx, {"email": "ANN@corp.example"})
    other = contacts.create_contact(ctx, {"email": "bob@corp.example"})
    fails("conflict", contacts.update_contact, ctx, other.id, {"email": "Ann@Corp.example"})


def test_update_merges_properties_and_blank_clears(ctx):
    contact = contacts.create_contact(
        ctx, {"email": "a@x.example", "firstname": "A", "plan": "pro"}
    )
    contacts.update_contact(ctx, contact.id, {"firstname": "", "seats": 3, "plan": None})
    stored = contacts.get_contact(ctx, contact.id)
    assert stored.firstname is None
    assert stored.properties == {"seats": 3}
    fails("contact_not_found", contacts.update_contact, ctx, MISSING_ID, {"firstname": "x"})


def test_search_and_keyset_pagination(ctx):
    for name in ["Ann", "Bob", "Anna", "Cid"]:
        contacts.create_contact(ctx, {"email": f"{name.lower()}@x.example", "firstname": name})
    page = contacts.search_contacts(ctx, "ann", limit=1)
    assert [c.firstname for c in page.results] == ["Ann"] and page.next_cursor
    rest = contacts.search_contacts(ctx, "ann", limit=1, after_id=page.next_cursor)
    assert [c.firstname for c in rest.results] == ["Anna"] and rest.next_cursor is None
    fails("validation_error", contacts.search_contacts, ctx, limit=0)


def test_delete_refuses_a_live_contact_then_forgets_everything(ctx, world):
    contact = world.contact()
    [result] = enroll(
        ctx,
        EnrollRequest(world.sequence.id, world.user.id, [ContactRequest(contact.id)]),
    )
    fails("invalid_state", contacts.delete_contact, ctx, contact.id)
    from cadenza.services.enrollment.control import unenroll

    unenroll(ctx, result.enrollment_id)
    contacts.delete_contact(ctx, contact.id)
    fails("contact_not_found", contacts.get_contact, ctx, contact.id)
    fails("contact_not_found", contacts.delete_contact, ctx, contact.id)


def test_postgresql_estimates_a_search_word_from_the_contacts(ctx, database):
    """A word a fifth of the contacts have walks them by id and stops at a page.

    PostgreSQL keeps no statistics on lower(company) by itself: with the word written
    in (the plan the first executions on each connection get) it guessed a handful of
    matches from the pattern alone and read and sorted every contact. Migration 0027's
    statistics on the lowered names make it estimate from what the contacts hold.
    """
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL's estimate; SQLite walks the ids without one")
    from sqlalchemy import event

    from tests.support.rows import insert_contacts

    insert_contacts(ctx, 2000, lambda i: "Globex Corp" if i % 5 == 0 else f"Firm {i % 40}")
    with database.engine.begin() as connection:  # committed: ANALYZE's are transactional
        connection.exec_driver_sql("ANALYZE contacts")
    sent: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        page = contacts.search_contacts(ctx, "GLOBEX", limit=50)
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert len(page.results) == 50 and page.next_cursor is not None
    [(sql, params)] = sent
    with database.engine.connect() as connection:
        [[plan]] = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).all()
    nodes = [plan[0]["Plan"]]
    for node in nodes:
        nodes.extend(node.get("Plans", []))
    [scan] = [n for n in nodes if n.get("Relation Name") == "contacts"]
    assert 200 <= scan["Plan Rows"] <= 800, scan  # 400 match
    assert scan["Node Type"] == "Index Scan" and scan["Index Name"] == "pk_contacts", nodes
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
