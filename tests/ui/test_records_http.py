"""Record, list and automation pages over HTTP on SQLite and PostgreSQL: who sees Enroll
and rules, enrolling from a record through the dialog's form, markup shown as text, and
bad input answered with a page next to its field."""

from __future__ import annotations

import re

import pytest

from cadenza.services.accounts.users import create_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.crm import lists, records
from cadenza.services.enrollment import views as enrollment_views
from tests.conftest import MISSING_ID
from tests.ui.conftest import Ui, set_password

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def ui(ctx, world):
    create_user(ctx, "admin@example.com", password="secret", role="admin")
    create_user(ctx, "member@example.com", password="secret")
    create_user(ctx, "viewer@example.com", password="secret", role="viewer")
    set_password(ctx, world.user.id, "pw")  # the world's rep (a member with a mailbox)
    return Ui(ctx, world)


@pytest.fixture
def company(ctx, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example", firstname="Bob")
    view = records.create_record(
        ctx, world.user.id, "company", name="Acme",
        properties={"domain": "acme.example"},
        associations=[records.AssociationIn(ann.id, primary=True), records.AssociationIn(bob.id)],
    )  # fmt: skip
    return view.record, ann, bob


def test_record_index_and_page_show_properties_and_the_primary(ui, company):
    record, _ann, _bob = company
    ui.login("rep@example.com", "pw")
    index = ui.client.get("/records/company?q=acm")
    assert index.status_code == 200
    assert f'href="/records/company/{record.id}"' in index.text and 'id="select-all"' in index.text
    assert ui.client.get("/records/company?q=zzz").text.count("record-name") == 0
    page = ui.client.get(f"/records/company/{record.id}")
    assert "acme.example" in page.text
    primary = re.search(r"ann@corp\.example.*?</li>", page.text, re.S).group(0)
    assert "primary" in primary
    assert "primary" not in re.search(r"bob@corp\.example.*?</li>", page.text, re.S).group(0)
    assert 'id="enroll-record"' in page.text


def test_enroll_from_a_record_asks_which_contact_then_remembers_the_record(ui, ctx, world, company):
    record, _ann, bob = company
    ui.login("rep@example.com", "pw")
    asked = ui.client.get(f"/enroll?record_type=company&record_id={record.id}")
    assert asked.status_code == 200 and "associated_contact_required" in asked.text
    assert "ann@corp.example" in asked.text and "bob@corp.example" in asked.text
    dialog = ui.client.get(f"/enroll?record_type=company&record_id={record.id}&contact={bob.id}")
    assert 'name="record_type" value="company"' in dialog.text
    token = ui.csrf("/contacts")
    form = {"csrf_token": token, "sequence": str(world.sequence.id), "contact": str(bob.id),
            "record_type": "company", "record_id": str(record.id), "send": "now",
            "follow_up_days": "every_day", "thread_follow_ups": "on"}  # fmt: skip
    done = ui.client.post("/enroll", data=form)
    assert done.status_code == 200 and "1 enrolled" in done.text, done.text
    [enrollment] = enrollment_views.list_enrollments(ctx, contact_id=bob.id)
    assert enrollment.source_record_id == record.id
    page = ui.client.get(f"/records/company/{record.id}")
    assert f'href="/enrollments/{enrollment.id}"' in page.text
    # A contact that is not associated with the record is refused by the service.
    stranger = world.contact("stranger@corp.example")
    form["contact"] = str(stranger.id)
    refused = ui.client.post("/enroll/check", data=form)
    assert "not_associated" in refused.text


def test_a_record_without_contacts_says_no_associated_contact(ui, ctx, world):
    lonely = records.create_record(ctx, world.user.id, "deal", name="Lonely deal").record
    ui.login("rep@example.com", "pw")
    page = ui.client.get(f"/records/deal/{lonely.id}")
    assert "no_associated_contact" in page.text and 'id="enroll-record"' not in page.text
    answer = ui.client.get(f"/enroll?record_type=deal&record_id={lonely.id}")
    assert answer.status_code == 422 and "no_associated_contact" in answer.text


def test_a_viewer_sees_records_and_lists_but_no_enroll_and_no_rules(ui, ctx, world, company):
    record, ann, _bob = company
    members = lists.create_list(ctx, world.user.id, "Leads", "static").contact_list
    lists.change_members(ctx, world.user.id, members.id, add=[ann.id])
    ui.login("viewer@example.com", "secret")
    for path in ("/records/company", f"/records/company/{record.id}", f"/lists/{members.id}"):
        page = ui.client.get(path)
        assert page.status_code == 200
        assert "Enroll in sequence" not in page.text and "enroll-list" not in page.text, path
    assert 'href="/automation"' not in page.text
    assert ui.client.get("/automation").status_code == 403
    assert ui.client.get(f"/enroll?record_type=company&record_id={record.id}").status_code == 403
    token = ui.csrf("/lists")
    answer = ui.client.post(f"/lists/{members.id}/enroll", data={"csrf_token": token,
                            "sequence": str(world.sequence.id)})  # fmt: skip
    assert answer.status_code == 403


def test_a_member_cannot_see_or_create_rules(ui, world):
    ui.login("rep@example.com", "pw")
    assert 'href="/automation"' not in ui.client.get("/contacts").text
    assert ui.client.get("/automation").status_code == 403
    token = ui.csrf("/contacts")
    answer = ui.client.post("/automation/rules", data={"csrf_token": token, "name": "r",
                            "trigger": '{"type": "contact_created"}',
                            "action": '{"type": "unenroll", "scope": "all"}'})  # fmt: skip
    assert answer.status_code == 403 and "permission_denied" in answer.text
    assert automation_rules.list_rules(ui.ctx) == []


def test_an_admin_creates_switches_and_reads_a_rule(ui, ctx, world):
    ui.login("admin@example.com", "secret")
    token = ui.csrf("/automation")
    base = {"csrf_token": token, "name": "Unenroll on bounce", "sequence": "",
            "trigger": '{"type": "bounced"}', "action": '{"type": "unenroll", "scope": "all"}',
            "enabled": "on"}  # fmt: skip
    bad_json = ui.client.post("/automation/rules", data={**base, "trigger": "{nope"})
    assert bad_json.status_code == 422
    assert re.search(r'id="error-trigger">not valid JSON', bad_json.text)
    assert "{nope" in bad_json.text  # what was typed is kept
    bad_trigger = ui.client.post("/automation/rules", data={**base, "trigger": '{"type": "x"}'})
    assert bad_trigger.status_code == 422 and "validation_error" in bad_trigger.text
    assert automation_rules.list_rules(ctx) == []
    created = ui.client.post("/automation/rules", data=base, follow_redirects=False)
    assert created.status_code == 303
    [rule] = automation_rules.list_rules(ctx)
    assert rule.enabled and rule.trigger == {"type": "bounced"}
    ui.client.post(f"/automation/rules/{rule.id}/enabled", data={"csrf_token": token,
                   "enabled": "false"})  # fmt: skip
    assert not automation_rules.get_rule(ctx, rule.id).enabled
    page = ui.client.get(f"/automation/rules/{rule.id}")
    assert page.status_code == 200 and "No runs yet" in page.text


@pytest.mark.parametrize(
    "trigger",
    ['{"type": "bounced", "n": ' + "9" * 5000 + "}", "[" * 9000 + "]" * 9000],
    ids=["5000-digit number", "nested 9000 deep"],
)
def test_json_past_the_readers_limits_is_refused_not_a_crash(ui, ctx, world, trigger):
    """Under the form's 20 000 characters, json.loads raises a bare ValueError (too many
    digits) or a RecursionError, not a JSONDecodeError (found by mypy: the form read
    `exc.msg` off any ValueError)."""
    ui.login("admin@example.com", "secret")
    token = ui.csrf("/automation")
    answer = ui.client.post("/automation/rules", data={"csrf_token": token, "name": "Big",
                            "sequence": "", "trigger": trigger,
                            "action": '{"type": "unenroll", "scope": "all"}'})  # fmt: skip
    assert answer.status_code == 422
    assert re.search(r'id="error-trigger">not valid JSON: a number or a nesting', answer.text)
    assert automation_rules.list_rules(ctx) == []


def test_markup_in_record_and_list_names_is_inert(ui, ctx, world):
    contact = world.contact()
    view = records.create_record(ctx, world.user.id, "company", name=XSS,
                                 associations=[records.AssociationIn(contact.id)])  # fmt: skip
    the_list = lists.create_list(ctx, world.user.id, XSS, "static").contact_list
    ui.login("rep@example.com", "pw")
    for path in ("/records/company", f"/records/company/{view.record.id}", "/lists",
                 f"/lists/{the_list.id}"):  # fmt: skip
        text = ui.client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;" in text, path


def test_whole_list_enrollment_starts_a_job_with_progress(ui, ctx, world):
    people = world.contacts(3)
    the_list = lists.create_list(ctx, world.user.id, "Three", "static").contact_list
    lists.change_members(ctx, world.user.id, the_list.id, add=[p.id for p in people])
    ui.login("rep@example.com", "pw")
    page = ui.client.get(f"/lists/{the_list.id}")
    assert page.text.count('class="row-check"') == 3
    token = ui.csrf("/lists")
    form = {"csrf_token": token, "sequence": str(world.sequence.id)}
    started = ui.client.post(f"/lists/{the_list.id}/enroll", data=form, follow_redirects=False)
    assert started.status_code == 303
    job_page = ui.client.get(started.headers["location"])
    assert "0 of 3 processed" in job_page.text and "running" in job_page.text
    empty = lists.create_list(ctx, world.user.id, "Empty", "static").contact_list
    refused = ui.client.post(f"/lists/{empty.id}/enroll", data={"csrf_token": token,
                             "sequence": str(world.sequence.id)})  # fmt: skip
    assert refused.status_code == 422 and "no_contacts" in refused.text


def test_bad_record_and_list_input_gets_a_page_not_a_500(ui):
    ui.login("rep@example.com", "pw")
    for path, status in (
        ("/records/nosuchtype", 404),
        (f"/records/company/{MISSING_ID}", 404),
        ("/records/company/0", 422),
        ("/records/Bad-Type!", 422),
        (f"/lists/{MISSING_ID}", 404),
        (f"/lists/jobs/{MISSING_ID}", 404),
        ("/enroll?record_type=company&record_id=abc", 422),
        (f"/enroll?record_type=company&record_id={MISSING_ID}", 404),
    ):
        answer = ui.client.get(path)
        assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
        assert "<html" in answer.text
    token = ui.csrf("/lists")
    blank = ui.client.post("/lists", data={"csrf_token": token, "name": "  "})
    assert blank.status_code == 422


def test_contacts_index_adds_the_selection_to_a_static_list(ui, ctx, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    the_list = lists.create_list(ctx, world.user.id, "Picked", "static").contact_list
    ui.login("rep@example.com", "pw")
    assert 'id="add-to-list"' in ui.client.get("/contacts").text
    headers = {"X-CSRF-Token": ui.csrf("/contacts"), "HX-Request": "true"}
    form = {"list": str(the_list.id), "contact": [str(ann.id), str(bob.id)]}
    added = ui.client.post("/lists/members", data=form, headers=headers)
    assert added.status_code == 200 and "2 of 2 added" in added.text
    assert lists.get_list(ctx, the_list.id).size == 2
    unknown = ui.client.post(
        "/lists/members", data={**form, "contact": str(MISSING_ID)}, headers=headers
    )
    assert unknown.status_code == 404 and "contact_not_found" in unknown.text
    none = ui.client.post("/lists/members", data={"list": str(the_list.id)}, headers=headers)
    assert none.status_code == 422 and "no_contacts" in none.text
    assert lists.get_list(ctx, the_list.id).size == 2
    ui.login("viewer@example.com", "secret")
    assert 'id="add-to-list"' not in ui.client.get("/contacts").text
    viewer_headers = {"X-CSRF-Token": ui.csrf("/contacts"), "HX-Request": "true"}
    assert ui.client.post("/lists/members", data=form, headers=viewer_headers).status_code == 403


@pytest.mark.parametrize("hostile", ["²", "٣", "9" * 5000, "1e3", str(2**31)])
def test_adding_to_a_list_refuses_ids_no_row_can_have(ui, ctx, world, hostile):
    ann = world.contact("ann@corp.example")
    the_list = lists.create_list(ctx, world.user.id, "Picked", "static").contact_list
    ui.login("rep@example.com", "pw")
    headers = {"X-CSRF-Token": ui.csrf("/contacts"), "HX-Request": "true"}
    bad_list = {"list": hostile, "contact": [str(ann.id)]}
    answer = ui.client.post("/lists/members", data=bad_list, headers=headers)
    assert answer.status_code == 422 and "validation_error" in answer.text
    bad_contact = {"list": str(the_list.id), "contact": [str(ann.id), hostile]}
    answer = ui.client.post("/lists/members", data=bad_contact, headers=headers)
    assert answer.status_code == 422 and "no_contacts" in answer.text
    assert lists.get_list(ctx, the_list.id).size == 0


def test_a_custom_object_type_has_its_index_and_record_pages(ui, ctx, world):
    records.create_type(
        ctx, None, name="project", plural="projects", label="Project",
        properties=[{"name": "budget", "label": "Budget", "type": "number"}],
    )  # fmt: skip
    contact = world.contact()
    project = records.create_record(
        ctx, world.user.id, "project", name="Migration", properties={"budget": "1,200"},
        associations=[records.AssociationIn(contact.id)],
    ).record  # fmt: skip
    ui.login("rep@example.com", "pw")
    index = ui.client.get("/records/company")
    assert 'href="/records/project"' in index.text  # a tab for every type
    projects = ui.client.get("/records/projects")  # the plural works too
    assert projects.status_code == 200 and "Migration" in projects.text and "1200" in projects.text
    page = ui.client.get(f"/records/project/{project.id}")
    assert "Budget" in page.text and "ann@corp.example" in page.text
    # One associated contact: the dialog opens for it directly.
    dialog = ui.client.get(f"/enroll?record_type=project&record_id={project.id}")
    assert dialog.status_code == 200 and 'id="enroll-form"' in dialog.text
    assert f'name="contact" value="{contact.id}"' in dialog.text
