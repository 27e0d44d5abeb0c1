"""Editing a contact in the web app with the API's validation, and a contact's page
listing its associated records (issue 11 item 9), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cadenza.services.accounts.users import create_user
from cadenza.services.crm import records
from cadenza.services.crm.contacts import get_contact
from tests.ui.conftest import Ui


def _form(rep, **values):
    base = {"csrf_token": rep.token, "email": "ann@corp.example", "firstname": "Ann",
            "lastname": "", "company": "", "jobtitle": "", "phone": "", "timezone": ""}  # fmt: skip
    return {**base, **values}


def test_edit_saves_through_the_same_service_as_the_api(rep, ctx, world):
    ann = world.contact("ann@corp.example", firstname="Ann", jobtitle="CTO", plan="gold")
    page = rep.client.get(f"/contacts/{ann.id}")
    assert f'href="/contacts/{ann.id}/edit"' in page.text
    form = rep.client.get(f"/contacts/{ann.id}/edit")
    assert 'value="CTO"' in form.text and 'name="prop:plan"' in form.text
    saved = rep.client.post(
        f"/contacts/{ann.id}/edit",
        data=_form(rep, email=" Ann.New@Corp.example ", lastname="Lee", timezone="Europe/Rome",
                   **{"prop:plan": "", "new_name_0": "tier", "new_value_0": "A"}),
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == f"/contacts/{ann.id}"
    contact = get_contact(ctx, ann.id)
    assert (contact.email_key, contact.lastname, contact.timezone) == (
        "ann.new@corp.example", "Lee", "Europe/Rome",
    )  # fmt: skip
    assert contact.jobtitle is None  # a blank field clears it
    assert contact.properties == {"tier": "A"}  # the blank "plan" removed it


@pytest.mark.parametrize(
    ("values", "status", "shown"),
    [
        ({"email": "not-an-email"}, 422, "not-an-email"),
        ({"timezone": "Mars/Base"}, 422, "Mars/Base"),
        ({"email": "bob@corp.example"}, 409, "bob@corp.example"),
        ({"new_name_0": "x" * 101, "new_value_0": "1"}, 422, "1 to 100 characters"),
        ({"firstname": "A\x00n"}, 422, "NUL"),
    ],
)
def test_bad_edits_are_refused_like_the_api_and_nothing_changes(rep, ctx, world, values,
                                                               status, shown):  # fmt: skip
    ann = world.contact("ann@corp.example", firstname="Ann")
    world.contact("bob@corp.example")
    refused = rep.client.post(f"/contacts/{ann.id}/edit", data=_form(rep, **values))
    assert refused.status_code == status
    assert 'id="contact-error"' in refused.text and shown in refused.text
    contact = get_contact(ctx, ann.id)
    assert (contact.email_key, contact.firstname, contact.timezone) == (
        "ann@corp.example", "Ann", None,
    )  # fmt: skip


def test_viewers_cannot_edit(ctx, world):
    ann = world.contact()
    create_user(ctx, "viewer@example.com", password="secret", role="viewer")
    viewer = Ui(ctx, world)
    viewer.login("viewer@example.com", "secret")
    assert "/edit" not in viewer.client.get(f"/contacts/{ann.id}").text
    assert viewer.client.get(f"/contacts/{ann.id}/edit").status_code == 403
    token = viewer.csrf(f"/contacts/{ann.id}")
    posted = viewer.client.post(f"/contacts/{ann.id}/edit", data={"csrf_token": token,
                                "firstname": "Mallory"})  # fmt: skip
    assert posted.status_code == 403 and get_contact(ctx, ann.id).firstname == "Ann"


def test_a_contacts_page_lists_its_associated_records(rep, ctx, world):
    ann = world.contact("ann@corp.example")
    acme = records.create_record(
        ctx, world.user.id, "company", name="Acme <b>Inc</b>",
        associations=[records.AssociationIn(ann.id, primary=True)],
    ).record  # fmt: skip
    deal = records.create_record(
        ctx, world.user.id, "deal", name="Renewal",
        associations=[records.AssociationIn(ann.id)],
    ).record  # fmt: skip
    page = rep.client.get(f"/contacts/{ann.id}").text
    assert f'href="/records/company/{acme.id}"' in page and "Acme &lt;b&gt;Inc&lt;/b&gt;" in page
    assert f'href="/records/deal/{deal.id}"' in page and "primary contact" in page
    lonely = world.contact("lonely@corp.example")
    assert "No associated companies" in rep.client.get(f"/contacts/{lonely.id}").text
