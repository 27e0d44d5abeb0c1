"""Issue 11 item 17: the demo data tells one coherent story, on both databases: a
company record's people work there (company field and email domain), the deal's
contact is at its company, and a reply at Globex ends Globex's enrollments only."""

from __future__ import annotations

from cadenza.services.accounts.users import find_user_by_email
from cadenza.services.crm import records
from cadenza.services.crm.contacts import get_contact
from cadenza.services.demo import load_demo
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import list_sequences, replace_sequence, step_specs


def test_every_company_records_people_work_there(ctx):
    load_demo(ctx)
    _, companies = records.search_records(ctx, "company", "")
    assert {c.name for c in companies} == {"Northwind Traders", "Globex"}
    for company in companies:
        view = records.get_record(ctx, "company", company.id)
        assert len(view.associations) == 2
        for association in view.associations:
            person = get_contact(ctx, association.contact_id)
            assert person.company == company.name
            assert person.email.endswith("@" + company.properties["domain"])
            assert person.bounced_at is None and person.unsubscribed_at is None
    _, deals = records.search_records(ctx, "deal", "")
    [deal] = deals
    [link] = records.get_record(ctx, "deal", deal.id).associations
    assert get_contact(ctx, link.contact_id).company == "Northwind Traders"


def test_a_reply_at_globex_ends_globex_enrollments_only(ctx):
    from cadenza.domain.enums import EventKind
    from cadenza.services.signals.effects import Signal, record_signal

    load_demo(ctx)
    rep = find_user_by_email(ctx, "rep@example.com")
    webinar = next(s for s in list_sequences(ctx) if s.name == "Webinar invite")
    replace_sequence(
        ctx, webinar.id, name=webinar.name, settings={"unenroll_on_reply": "company"},
        steps=[s.to_dict() for s in step_specs(webinar)],
    )  # fmt: skip
    _, [globex] = records.search_records(ctx, "company", "Globex")
    ann, bob = (a.contact_id for a in records.get_record(ctx, "company", globex.id).associations)
    _, [northwind] = records.search_records(ctx, "company", "Northwind")
    other = records.get_record(ctx, "company", northwind.id).associations[0].contact_id
    results = enroll(
        ctx,
        EnrollRequest(sequence_id=webinar.id, user_id=rep.id,
                      contacts=[ContactRequest(c) for c in (ann, bob, other)]),
    )  # fmt: skip
    assert all(r.ok for r in results), results
    outcome = record_signal(ctx, Signal(EventKind.REPLY, "demo-reply", contact_id=ann))
    by_contact = {r.contact_id: r.enrollment_id for r in results}
    assert sorted(outcome.unenrolled) == sorted([by_contact[ann], by_contact[bob]])
