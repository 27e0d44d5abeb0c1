"""The web app's rules over HTTP (no browser), on SQLite and PostgreSQL: sessions, CSRF,
redirects, permissions, and bad input answered with a page, never a 500."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cadenza.services.accounts.users import change_password, create_user
from cadenza.services.enrollment import views as enrollment_views
from cadenza.store.models import Enrollment, User
from cadenza.web.app import create_app
from cadenza.web.ui.session import COOKIE_NAME, local_path
from tests.conftest import MISSING_ID, backend_independent

# The `ui` fixture and the Ui client live in tests/ui/conftest.py. Re-exported for test
# modules written before they moved there; new tests import from the conftest.
from tests.ui.conftest import CSRF, Ui, csrf_token, enroll_form  # noqa: F401


@backend_independent
@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/contacts?q=a", "/contacts?q=a"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_login_redirects_back_only_to_a_local_path(ui, target, expected):
    answer = ui.login("pw@example.com", "secret", target)
    assert answer.status_code == 303
    assert answer.headers["location"] == expected
    assert local_path(target) == expected


def test_the_session_cookie_is_signed_httponly_and_lax(ui):
    answer = ui.login("pw@example.com", "secret")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert ui.client.get("/contacts").status_code == 200
    # A tampered cookie is no session at all.
    value = ui.client.cookies.get(COOKIE_NAME)
    ui.client.cookies.set(COOKIE_NAME, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    answer = ui.client.get("/contacts", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/contacts"


def test_the_cookie_is_secure_over_https(ctx, world):
    create_user(ctx, "pw@example.com", password="secret")
    client = TestClient(create_app(ctx), base_url="https://cadenza.test")
    token = csrf_token(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"email": "pw@example.com", "password": "secret", "csrf_token": token},
        follow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(ui):
    wrong = ui.login("pw@example.com", "nope")
    unknown = ui.login("nobody@example.com", "secret")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong email or password" in wrong.text and "wrong email or password" in unknown.text


def test_failed_logins_are_braked(ui):
    for _ in range(10):
        assert ui.login("pw@example.com", "nope").status_code == 401
    braked = ui.login("pw@example.com", "secret")
    assert braked.status_code == 429 and "wait a few minutes" in braked.text


def test_every_page_needs_a_session(ui):
    for path in ("/", "/contacts", "/contacts/1", "/enroll?contact=1", "/enrollments",
                 "/tasks", "/outbox", "/sequences", "/settings"):  # fmt: skip
        answer = ui.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=/"), path
    htmx = ui.client.get("/contacts", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/login?next=/contacts"


def test_unsafe_methods_need_the_session_csrf_token(ui):
    ui.login("pw@example.com", "secret")
    token = ui.csrf("/contacts")
    refused = [
        ui.client.post("/logout", follow_redirects=False),
        ui.client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False),
        ui.client.post("/logout", headers={"X-CSRF-Token": token + "x"}, follow_redirects=False),
    ]
    for answer in refused:
        assert answer.status_code == 403 and "csrf_failed" in answer.text
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 200
    answer = ui.client.post("/logout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 303


def test_a_password_change_ends_old_sessions(ui, ctx):
    ui.login("pw@example.com", "secret")
    assert ui.client.get("/contacts").status_code == 200
    with ctx.db.read() as session:
        user = session.query(User).filter_by(email="pw@example.com").one()
    change_password(ctx, user.id, "changed-password")
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 303


def test_a_viewer_cannot_open_the_enroll_dialog_or_post_it(ui, world):
    ui.login("viewer@example.com", "secret")
    contact = world.contact()
    assert 'id="enroll-selected"' not in ui.client.get("/contacts").text
    page = ui.client.get(f"/enroll?contact={contact.id}")
    assert page.status_code == 403 and "permission_denied" in page.text
    token = ui.csrf("/contacts")
    posted = ui.client.post(
        "/enroll", data={"csrf_token": token, "sequence": "1", "contact": str(contact.id)}
    )
    assert posted.status_code == 403


def test_bad_input_gets_a_page_not_a_500(ui):
    ui.login("pw@example.com", "secret")
    for path, status in (
        ("/contacts?sort=nope", 422),
        ("/contacts?timezone=Mars/Base", 422),
        ("/contacts?page=0", 422),
        (f"/contacts/{MISSING_ID}", 404),
        ("/contacts/99999999999", 422),
        ("/enrollments?state=sleeping", 422),
        ("/no-such-page", 404),
    ):
        answer = ui.client.get(path)
        assert answer.status_code == status, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert 'class="error"' in answer.text
    # The API keeps its JSON errors.
    assert ui.client.get("/api/v1/contacts").json()["error"]["code"] == "unauthenticated"


def test_the_enroll_check_shows_field_errors_next_to_their_field(ui, world):
    assert ui.login("rep@example.com", "pw").status_code == 303
    token = ui.csrf("/contacts")
    contact = world.contact()
    cases = {
        "timezone": {"timezone": "Mars/Base"},
        "send": {"send": "later", "send_date": "2020-01-01", "send_time": "09:00"},
        "settings": {"window_start": "18:00", "window_end": "08:00"},
        "start_step": {"start_step": "9"},
    }
    for field, bad in cases.items():
        answer = ui.client.post("/enroll/check", data=enroll_form(token, world, [contact], **bad))
        assert answer.status_code == 200
        error = re.search(rf'id="error-{field}"[^>]*>([^<]*)<', answer.text).group(1)
        assert error.strip(), (field, answer.text[:500])
        assert 'id="enroll-submit"' in answer.text and "disabled" in answer.text


def test_the_enroll_dialog_enrolls_with_edits_tokens_and_settings(ui, world, ctx):
    assert ui.login("rep@example.com", "pw").status_code == 303
    token = ui.csrf("/contacts")
    ann = world.contact()
    nameless = world.contact("x@corp.example", firstname=None)
    form = enroll_form(
        token,
        world,
        [ann, nameless],
        **{
            "token:contact.firstname": "there",
            f"edit:{ann.id}:1:subject": "Hello Ann, personally",
            f"edit:{ann.id}:2:body": world.sequence.steps[1].body,  # unchanged: no edit
            "window_start": "08:00",
            "window_end": "17:00",
        },
    )
    check = ui.client.post("/enroll/check", data=form)
    assert "Enroll 2 contacts" in check.text and "2 of 2 can be enrolled" in check.text
    done = ui.client.post("/enroll", data=form)
    assert done.status_code == 200 and done.text.count('class="ok"') == 2
    with ctx.db.read() as session:
        rows = {e.contact_id: e for e in session.query(Enrollment)}
    assert rows[ann.id].steps_snapshot[0]["subject"] == "Hello Ann, personally"
    assert rows[ann.id].steps_snapshot[1]["body"] == world.sequence.steps[1].body
    assert rows[ann.id].token_values == {}  # Ann has a first name of her own
    assert rows[nameless.id].token_values == {"contact.firstname": "there"}
    assert rows[ann.id].settings_snapshot["send_window"] == {"start": "08:00", "end": "17:00"}
    assert enrollment_views.get_enrollment(ctx, rows[ann.id].id).enrollment.state == "active"


def test_an_unknown_send_is_reviewed_from_its_page(ui, ctx, world, worker):
    from cadenza.services.delivery import outbox
    from tests.conftest import crash_while_handing_over, enroll_ids

    enroll_ids(world, [world.contact()])
    crash_while_handing_over(ctx, worker)
    [message] = outbox.list_messages(ctx, status="unknown")
    assert ui.login("rep@example.com", "pw").status_code == 303
    page = ui.client.get(f"/outbox/{message.id}")
    assert "Did this email arrive?" in page.text
    token = csrf_token(page.text)
    bad = ui.client.post(f"/outbox/{message.id}/review", data={"csrf_token": token})
    assert bad.status_code == 422
    done = ui.client.post(
        f"/outbox/{message.id}/review", data={"csrf_token": token, "delivered": "yes"}
    )
    assert done.status_code == 200 and "Did this email arrive?" not in done.text
    assert outbox.get_message(ctx, message.id)[0].status == "sent"
    again = ui.client.post(
        f"/outbox/{message.id}/review", data={"csrf_token": token, "delivered": "no"}
    )
    assert again.status_code == 409


def test_a_user_with_several_mailboxes_chooses_the_sender(ui, ctx, world):
    from cadenza.services.accounts.mailboxes import create_mailbox

    second = create_mailbox(ctx, world.user.id, "rep2@example.com", from_name="Riley Two")
    assert ui.login("rep@example.com", "pw").status_code == 303
    contact = world.contact()
    dialog = ui.client.get(f"/enroll?contact={contact.id}").text
    assert 'id="mailbox"' in dialog and "rep2@example.com" in dialog
    token = csrf_token(dialog)
    form = enroll_form(token, world, [contact], mailbox=str(second.id))
    assert ui.client.post("/enroll", data=form).status_code == 200
    with ctx.db.read() as session:
        [enrollment] = session.query(Enrollment).all()
    assert enrollment.mailbox_id == second.id
    missing = ui.client.post("/enroll/check", data=enroll_form(token, world, [contact]))
    assert "choose the one to send from" in missing.text
