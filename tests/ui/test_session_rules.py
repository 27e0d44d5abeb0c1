"""The browser session's rules one by one (web/ui/session.py): the cookie's contents and
signature, the CSRF token's life and where it may be sent, and where a signed-out
visitor is sent back to. test_guards_http and test_sessions_http hold the flows."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from cadenza.store.models import User
from cadenza.web.ui import session_secret
from cadenza.web.ui.session import COOKIE_NAME, Session, SessionCodec, local_path, login_url

REFUSED = "this form has expired or did not come from Cadenza: reload the page and try again"


def test_a_new_session_makes_its_csrf_token_once():
    session = Session()
    assert not session.changed and session.data == {}
    token = session.csrf
    assert session.changed and session.data == {"csrf": token}
    assert len(token) >= 43  # 32 random bytes, URL-safe
    session.changed = False
    assert session.csrf == token and not session.changed  # kept, not remade


def test_signing_in_and_out_replace_the_whole_session_and_its_token():
    session = Session({"csrf": "seen-before", "next": "/x"})
    session.sign_in(User(id=41, session_epoch=3))
    token = session.data["csrf"]
    assert session.data == {"csrf": token, "uid": 41, "epoch": 3}
    assert token != "seen-before" and len(token) >= 43 and session.changed
    session.changed = False
    session.sign_out()
    assert set(session.data) == {"csrf"} and session.changed
    assert session.data["csrf"] not in (token, "seen-before") and len(session.data["csrf"]) >= 43


def test_the_cookie_keeps_the_session_and_refuses_what_was_not_signed_with_its_key():
    codec = SessionCodec("key")
    cookie = codec.dump(Session({"csrf": "t", "uid": 7, "epoch": 1}))
    assert codec.load(cookie).data == {"csrf": "t", "uid": 7, "epoch": 1}
    assert not codec.load(cookie).changed
    for stranger in (None, "", cookie[:-2] + "xx", SessionCodec("other key").dump(Session())):
        assert codec.load(stranger).data == {}
    # Signed with the key but not a dict (a cookie from something else on the same key):
    other = URLSafeTimedSerializer("key", salt="cadenza.ui.session").dumps(["uid", 7])
    assert codec.load(other).data == {}


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/contacts?q=ann", True),
        ("/contacts?q=Xavier", True),
        (None, False),
        ("", False),
        ("contacts", False),
        ("https://evil.example/", False),
        ("//evil.example/", False),
        ("/\\evil.example/", False),
        ("/a\\b", False),
        ("/a\r\nSet-Cookie: x", False),
        ("/a\nb", False),
        ("/a\tb", False),
    ],
)
def test_only_a_path_on_this_site_is_a_place_to_return_to(target, kept):
    assert local_path(target) == (target if kept else "/")


def test_the_login_link_carries_the_place_to_return_to_quoted():
    assert login_url("/contacts?q=ann lee&page=2") == (
        "/login?next=/contacts%3Fq%3Dann%20lee%26page%3D2"
    )
    assert login_url("//evil.example/") == "/login?next=/"


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back_with_the_query(ui):
    answer = ui.client.get("/contacts?q=ann", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/contacts%3Fq%3Dann"


def test_a_session_whose_user_id_is_not_a_number_is_signed_out(ctx, ui):
    rep = ui.world.user
    with ctx.db.transaction() as db:
        epoch = db.get(User, rep.id).session_epoch
    forged = {"csrf": "t", "uid": str(rep.id), "epoch": epoch}  # signed, but not as we write it
    ui.client.cookies.set(COOKIE_NAME, SessionCodec(session_secret(ctx)).dump(Session(forged)))
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 303


def test_the_csrf_token_is_taken_from_the_header_or_a_form(rep):
    answer = rep.client.post("/logout", headers={"X-CSRF-Token": rep.token}, follow_redirects=False)
    assert answer.status_code == 303


def test_the_csrf_token_in_a_multipart_form_is_read(rep):
    answer = rep.client.post(
        "/logout",
        data={"csrf_token": rep.token},
        files={"note": ("note.txt", b"hello", "text/plain")},
        follow_redirects=False,
    )
    assert answer.status_code == 303


@pytest.mark.parametrize(
    "how",
    [
        {"data": {}},  # none sent
        {"data": {"csrf_token": "not-the-token"}},
        {"json": {"csrf_token": "TOKEN"}},  # only forms are read for it
        {"headers": {"X-CSRF-Token": "not-the-token"}, "data": {"csrf_token": "TOKEN"}},
    ],
)
def test_a_change_without_the_sessions_token_is_refused_and_told_why(rep, how):
    how = {
        key: {k: rep.token if v == "TOKEN" else v for k, v in value.items()}
        for key, value in how.items()
    }
    answer = rep.client.post("/logout", follow_redirects=False, **how)
    assert answer.status_code == 403
    assert f'data-code="csrf_failed">{REFUSED} <span' in answer.text  # the message, whole
    assert rep.client.get("/tasks", follow_redirects=False).status_code == 200  # still in


def test_reading_needs_no_token_and_a_session_without_one_is_refused_a_change(ctx, ui):
    assert ui.client.get("/login").status_code == 200
    # A signed session that never got a token (empty string): no token matches it.
    empty = SessionCodec(session_secret(ctx)).dump(Session({"csrf": ""}))
    ui.client.cookies.set(COOKIE_NAME, empty)
    answer = ui.client.post("/login", data={"csrf_token": ""}, follow_redirects=False)
    assert answer.status_code == 403 and REFUSED in answer.text


def test_a_member_is_refused_an_admins_page(ui):
    ui.sign_in("pw@example.com", "secret", "/settings")
    answer = ui.client.post(
        "/settings/users",
        data={"csrf_token": ui.token, "email": "new@example.com", "role": "member"},
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "only admins can do this" in answer.text
