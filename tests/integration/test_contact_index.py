"""The contact index the web app browses, and the service additions the UI needs."""

from __future__ import annotations

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import authenticate, create_user
from cadenza.services.crm import contact_index
from cadenza.services.crm.contact_index import ContactFilter, browse_contacts, contact_timezones
from cadenza.services.delivery import outbox
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Contact
from tests.conftest import enroll_ids


@pytest.fixture
def people(world, ctx):
    ann = world.contact("ann@corp.example", firstname="Ann", lastname="Zed", timezone="Europe/Rome")
    bob = world.contact("bob@corp.example", firstname="Bob", lastname="Young", company="Acme")
    cid = world.contact("cid@corp.example", firstname="Cid", lastname="Xu", timezone="Asia/Tokyo")
    dee = world.contact("dee@corp.example", firstname="Dee", lastname="Wu", timezone="Europe/Rome")
    with ctx.db.transaction() as session:
        session.get(Contact, cid.id).bounced_at = ctx.clock.now()
        session.get(Contact, dee.id).unsubscribed_at = ctx.clock.now()
    enroll_ids(world, [bob])
    return ann, bob, cid, dee


def names(page):
    return [c.firstname for c in page.contacts]


def test_filters_combine(ctx, people):
    _ann, bob, _cid, _dee = people
    assert names(browse_contacts(ctx, ContactFilter(timezone="Europe/Rome"))) == ["Dee", "Ann"]
    assert names(browse_contacts(ctx, ContactFilter(timezone="none"))) == ["Bob"]
    assert names(browse_contacts(ctx, ContactFilter(enrolled="yes"))) == ["Bob"]
    assert names(browse_contacts(ctx, ContactFilter(enrolled="no"))) == ["Dee", "Cid", "Ann"]
    assert names(browse_contacts(ctx, ContactFilter(status="bounced"))) == ["Cid"]
    assert names(browse_contacts(ctx, ContactFilter(status="unsubscribed"))) == ["Dee"]
    assert names(browse_contacts(ctx, ContactFilter(status="reachable"))) == ["Bob", "Ann"]
    assert names(browse_contacts(ctx, ContactFilter(query="ACME"))) == ["Bob"]
    found = browse_contacts(ctx, ContactFilter(timezone="Europe/Rome", status="reachable"))
    assert names(found) == ["Ann"] and found.total == 1
    assert browse_contacts(ctx, ContactFilter()).live_contact_ids == {bob.id}
    assert contact_timezones(ctx) == ["Asia/Tokyo", "Europe/Rome"]


def test_sort_and_pages(ctx, people):
    by_email = browse_contacts(ctx, ContactFilter(sort="email", descending=True), per_page=3)
    assert names(by_email) == ["Dee", "Cid", "Bob"] and by_email.total == 4 and by_email.pages == 2
    second = browse_contacts(ctx, ContactFilter(sort="email", descending=True), page=2, per_page=3)
    assert names(second) == ["Ann"]
    assert names(browse_contacts(ctx, ContactFilter(sort="company")))[-1] == "Bob"


@pytest.mark.parametrize(
    "spec",
    [
        ContactFilter(sort="shoe_size"),
        ContactFilter(timezone="Mars/Base"),
        ContactFilter(enrolled="maybe"),
        ContactFilter(status="happy"),
    ],
)
def test_bad_filters_are_refused(ctx, spec):
    with pytest.raises(CadenzaError) as raised:
        browse_contacts(ctx, spec)
    assert raised.value.http_status == 422


def test_the_total_is_counted_up_to_the_cap_and_pages_reach_as_far(ctx, people, monkeypatch):
    """Past COUNT_CAP the index says "N+" and offers pages up to the cap, not beyond: a
    million contacts are neither counted nor skipped over on every request."""
    monkeypatch.setattr(contact_index, "COUNT_CAP", 3)
    capped = browse_contacts(ctx, ContactFilter(), per_page=2)
    assert (capped.total, capped.capped, capped.total_label, capped.pages) == (4, True, "3+", 2)
    assert names(browse_contacts(ctx, ContactFilter(), page=2, per_page=2)) == ["Bob", "Ann"]
    with pytest.raises(CadenzaError) as raised:
        browse_contacts(ctx, ContactFilter(), page=3, per_page=2)
    assert raised.value.http_status == 422 and "narrow" in raised.value.message
    exact = browse_contacts(ctx, ContactFilter(timezone="Europe/Rome"), per_page=2)
    assert (exact.total, exact.capped, exact.total_label) == (2, False, "2")


def test_the_count_reaches_the_pages_around_the_one_shown(ctx, people, monkeypatch):
    """A page counts the matches as far as PAGES_AHEAD pages past it (at least
    COUNT_FLOOR), not to COUNT_CAP: a search's count reads every match it counts, and
    10,000 of them cost far more than the page's own 25 (docs/ui.md). A deeper page
    counts further; past the count, the total and the last page read "N+"."""
    monkeypatch.setattr(contact_index, "COUNT_FLOOR", 1)
    monkeypatch.setattr(contact_index, "PAGES_AHEAD", 1)
    spec = ContactFilter(query="corp.example")  # the four people
    first = browse_contacts(ctx, spec, per_page=1)
    third = browse_contacts(ctx, spec, page=3, per_page=1)
    shown = [(p.total, p.capped, p.total_label, p.pages_label) for p in (first, third)]
    assert shown == [(3, True, "2+", "2+"), (4, False, "4", "4")]
    assert names(third) == ["Bob"]


def test_the_zones_offered_are_those_contacts_have(ctx, people):
    assert contact_timezones(ctx) == ["Asia/Tokyo", "Europe/Rome"]


def test_bad_pages_are_refused(ctx):
    for page, per_page in ((0, 10), (1, 0), (1, 201)):
        with pytest.raises(CadenzaError):
            browse_contacts(ctx, ContactFilter(), page=page, per_page=per_page)


def test_enrollment_settings_override_the_sequence_for_that_enrollment(ctx, world):
    contact = world.contact()
    [result] = enroll(
        ctx,
        EnrollRequest(
            world.sequence.id,
            world.user.id,
            [ContactRequest(contact.id)],
            settings={"follow_up_days": "every_day", "send_window": "10:00-12:00"},
        ),
    )
    assert result.ok
    # Monday 09:00 UTC = 04:00 New York; step 2 three days later, moved into the window.
    assert [s.due_at.strftime("%a %H:%M") for s in result.schedule][1] == "Thu 10:00"
    with pytest.raises(CadenzaError) as raised:
        enroll(
            ctx,
            EnrollRequest(
                world.sequence.id,
                world.user.id,
                [ContactRequest(world.contact("z@corp.example").id)],
                settings={"send_window": "12:00-10:00"},
            ),
        )
    assert raised.value.code == "validation_error"


def test_authenticate(ctx):
    create_user(ctx, "pw@example.com", password="secret")
    create_user(ctx, "nopw@example.com")
    assert authenticate(ctx, " PW@example.com ", "secret").email == "pw@example.com"
    assert authenticate(ctx, "pw@example.com", "Secret") is None
    assert authenticate(ctx, "nopw@example.com", "") is None
    assert authenticate(ctx, "nobody@example.com", "secret") is None


def test_waiting_emails_of_one_owner(ctx, world):
    other = create_user(ctx, "other@example.com")
    create_mailbox(ctx, other.id, "other@example.com")
    enroll_ids(world, [world.contact()])
    assert len(outbox.list_waiting(ctx, owner_id=world.user.id)) == 1
    assert outbox.list_waiting(ctx, owner_id=other.id) == []
    [run] = outbox.list_waiting(ctx)
    assert run.contact.email == "ann@corp.example"  # whom it is for, read with the run


def test_preview_renders_each_step_for_a_contact_and_reports_gaps(ctx, world):
    from cadenza.domain.steps import parse_steps
    from cadenza.services.sequences.preview import preview_steps

    specs = parse_steps(
        [
            {"type": "email", "subject": "Hi {{ contact.firstname }}",
             "body": "<p>{{ sender.firstname }}</p>"},
            {"type": "email", "thread_with_step": 1, "body": "<p>{{ contact.jobtitle }}</p>"},
        ]
    )  # fmt: skip
    first, second = preview_steps(ctx, specs, world.contact().id, world.user.id)
    assert (first.subject, first.body_html, first.problems) == ("Hi Ann", "<p>Riley</p>", [])
    assert second.subject == "Re: Hi Ann"  # threaded: as it goes out
    assert second.body_html is None and "contact.jobtitle" in second.problems[0]


def test_reachable_means_enrollment_would_not_refuse_for_the_address(ctx, world, people):
    """Issue 11 item 13: no address, a blocked contact, or a blocklisted address or
    domain is not "reachable"; `no_email` finds the contacts without an address."""
    from cadenza.services.crm.contacts import create_contact
    from cadenza.store.models import BlockedAddress

    nobody = create_contact(ctx, {"firstname": "Nora", "lastname": "Vo"})
    blocked = world.contact("eve@corp.example", firstname="Eve", lastname="Ux")
    world.contact("fay@spam.example", firstname="Fay", lastname="Tan")
    world.contact("gus@other.example", firstname="Gus", lastname="Sol")
    with ctx.db.transaction() as session:
        session.get(Contact, blocked.id).blocked = True
        session.add(BlockedAddress(pattern="@spam.example", created_at=ctx.clock.now()))
        session.add(BlockedAddress(pattern="gus@other.example", created_at=ctx.clock.now()))
    assert names(browse_contacts(ctx, ContactFilter(status="reachable"))) == ["Bob", "Ann"]
    found = browse_contacts(ctx, ContactFilter(status="no_email"))
    assert [c.id for c in found.contacts] == [nobody.id]


def _statements(database, action) -> list[str]:
    """The SELECTs `action` sends, as the database receives them."""
    from sqlalchemy import event

    sent: list[str] = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        action()
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    return sent


def test_a_zone_in_name_order_walks_its_index_and_stops(ctx, database, people):
    """The default sort with a zone filter reads a page of the zone's contacts along
    ix_contacts_timezone_name, not all of them sorted (a zone holds thousands)."""
    _, _, _, dee = people
    found: list = []

    def browse() -> None:
        found.append(browse_contacts(ctx, ContactFilter(timezone="Europe/Rome"), per_page=1))

    sent = _statements(database, browse)
    assert [c.id for c in found[0].contacts] == [dee.id] and found[0].total == 2
    if database.dialect != "sqlite":
        return  # PostgreSQL picks by its statistics: tests/ui/test_page_query_plans.py
    [page] = [sql for sql in sent if "ORDER BY" in sql]
    with database.engine.connect() as connection:
        plan = [row[-1] for row in connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + page, ("Europe/Rome", 1, 0)
        )]  # fmt: skip
    assert any("ix_contacts_timezone_name" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_search_ignores_case_and_sqlite_compares_the_columns_themselves(ctx, database, world):
    """The same contacts match on both databases whatever the case typed; SQLite's LIKE
    ignores ASCII case by itself, so the search sends no lower(), which cost more than
    the LIKE on every contact a search reads."""
    from cadenza.services.crm import contacts

    muller = world.contact("hans@corp.example", firstname="Hans", lastname="Müller")
    globex = world.contact("eve@corp.example", firstname="Eve", company="Globex Corp")
    world.contact("zoe@other.example", firstname="Zoe", lastname="Stone")
    for typed, expected in (("MÜLLER", muller), ("gLoBeX", globex), ("EVE@CORP", globex)):
        found: list = []
        sent = _statements(
            database,
            lambda typed=typed, found=found: found.append(contacts.search_contacts(ctx, typed)),
        )
        assert [c.id for c in found[0].results] == [expected.id], typed
        index = browse_contacts(ctx, ContactFilter(query=typed))
        assert [c.id for c in index.contacts] == [expected.id], typed
        assert ("lower(" in sent[0]) is (database.dialect == "postgresql"), sent[0]
