"""Sessions end when they should, everywhere at once; accounts can be deactivated; the
failed-login brake is shared through the database and keyed by account and address.
Over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cadenza.domain.secrets import hash_password
from cadenza.services.accounts import login_brake, users
from cadenza.services.accounts.users import create_token, create_user
from cadenza.store.models import User
from cadenza.web.app import create_app
from cadenza.web.ui.session import COOKIE_NAME

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """One browser: its own cookie jar, over its own app (another process, in effect)."""

    def __init__(self, ctx, headers=None) -> None:
        self.client = TestClient(create_app(ctx), raise_server_exceptions=False)
        if headers:
            self.client.headers.update(headers)

    def csrf(self, path: str = "/login") -> str:
        return CSRF.search(self.client.get(path).text).group(1)

    def login(self, email: str, password: str):
        data = {"email": email, "password": password, "next": "/", "csrf_token": self.csrf()}
        return self.client.post("/login", data=data, follow_redirects=False)

    def post(self, path: str, **data):
        data["csrf_token"] = self.csrf("/settings")
        return self.client.post(path, data=data, follow_redirects=False)

    def signed_in(self) -> bool:
        return self.client.get("/contacts", follow_redirects=False).status_code == 200


@pytest.fixture
def people(ctx, world):
    admin = create_user(ctx, "boss@example.com", password="boss-secret", role="admin")
    member = create_user(ctx, "ann@example.com", password="ann-secret", role="member")
    return admin, member


def test_a_revoked_session_cookie_reused_is_refused(ctx, people):
    laptop, phone = Browser(ctx), Browser(ctx)
    assert laptop.login("ann@example.com", "ann-secret").status_code == 303
    assert phone.login("ann@example.com", "ann-secret").status_code == 303
    stolen = laptop.client.cookies.get(COOKIE_NAME)
    assert laptop.post("/logout").status_code == 303
    assert not phone.signed_in()  # signing out ends the user's sessions everywhere
    thief = Browser(ctx)
    thief.client.cookies.set(COOKIE_NAME, stolen)
    assert not thief.signed_in()


def test_a_password_change_on_the_web_ends_other_sessions_and_keeps_this_one(ctx, people):
    laptop, phone = Browser(ctx), Browser(ctx)
    laptop.login("ann@example.com", "ann-secret")
    phone.login("ann@example.com", "ann-secret")
    wrong = laptop.post(
        "/settings/password", current_password="nope", new_password="brand-new-pw",
        confirm_password="brand-new-pw",
    )  # fmt: skip
    assert wrong.status_code == 403 and "current password" in wrong.text
    short = laptop.post(
        "/settings/password", current_password="ann-secret", new_password="short",
        confirm_password="short",
    )  # fmt: skip
    assert short.status_code == 422
    assert phone.signed_in()  # refused changes end nothing
    done = laptop.post(
        "/settings/password", current_password="ann-secret", new_password="brand-new-pw",
        confirm_password="brand-new-pw",
    )  # fmt: skip
    assert done.status_code == 200 and "Password changed." in done.text
    assert laptop.signed_in() and not phone.signed_in()
    assert Browser(ctx).login("ann@example.com", "ann-secret").status_code == 401
    assert Browser(ctx).login("ann@example.com", "brand-new-pw").status_code == 303


def test_a_role_change_ends_the_users_sessions(ctx, people):
    admin, member = people
    session = Browser(ctx)
    session.login("ann@example.com", "ann-secret")
    users.update_user(ctx, member.id, role="viewer", actor_id=admin.id)
    assert not session.signed_in()
    unchanged = Browser(ctx)
    unchanged.login("ann@example.com", "ann-secret")
    users.update_user(ctx, member.id, can_enroll=False, actor_id=admin.id)
    assert unchanged.signed_in()  # not a role change: the session stays


def test_an_admin_deactivates_a_user_and_revokes_their_tokens(ctx, people):
    admin, member = people
    boss, ann = Browser(ctx), Browser(ctx)
    boss.login("boss@example.com", "boss-secret")
    ann.login("ann@example.com", "ann-secret")
    token = create_token(ctx, member.id, "laptop").token
    api = Browser(ctx, {"Authorization": f"Bearer {token}"}).client
    assert api.get("/api/v1/contacts").status_code == 200
    answer = boss.post(f"/settings/users/{member.id}/active", active="no")
    assert answer.status_code == 200 and "Deactivated" in answer.text
    assert not ann.signed_in()
    assert api.get("/api/v1/contacts").status_code == 401
    assert Browser(ctx).login("ann@example.com", "ann-secret").status_code == 401
    boss.post(f"/settings/users/{member.id}/active", active="yes")
    assert api.get("/api/v1/contacts").status_code == 200  # the token was not revoked
    revoked = boss.post(f"/settings/users/{member.id}/revoke-tokens")
    assert "1 token(s) revoked." in revoked.text
    assert api.get("/api/v1/contacts").status_code == 401
    refused = ann_as_member_tries(ctx, admin)
    assert refused == 403


def ann_as_member_tries(ctx, admin) -> int:
    member = Browser(ctx)
    member.login("ann@example.com", "ann-secret")
    return member.post(f"/settings/users/{admin.id}/active", active="no").status_code


def test_the_last_active_admin_cannot_be_deactivated(ctx, people):
    admin, _ = people
    boss = Browser(ctx)
    boss.login("boss@example.com", "boss-secret")
    answer = boss.post(f"/settings/users/{admin.id}/active", active="no")
    assert answer.status_code == 409 and "last active admin" in answer.text
    assert boss.signed_in()


def test_a_new_token_page_is_not_stored_and_https_gets_hsts(ctx, people):
    boss = Browser(ctx)
    boss.login("boss@example.com", "boss-secret")
    page = boss.post("/settings/tokens", name="ci")
    assert "cdz_" in page.text and page.headers["cache-control"] == "no-store"
    secure = TestClient(create_app(ctx), base_url="https://cadenza.example")
    assert "max-age=" in secure.get("/login").headers["strict-transport-security"]
    assert "strict-transport-security" not in boss.client.get("/login").headers


def test_a_password_flood_for_one_account_neither_locks_its_owner_nor_any_token(ctx, people):
    _, member = people
    token = create_token(ctx, member.id, "ci").token
    attacker = Browser(ctx)  # the same peer address as everyone in a TestClient ...
    for _ in range(login_brake.ATTEMPTS_ALLOWED):
        assert attacker.login("ann@example.com", "guess").status_code == 401
    assert attacker.login("ann@example.com", "ann-secret").status_code == 429
    # ... another web process (a fresh app, nothing in memory) still brakes the pair
    assert Browser(ctx).login("ann@example.com", "ann-secret").status_code == 429
    # the token of the account under attack is still served
    api = Browser(ctx, {"Authorization": f"Bearer {token}"}).client
    assert api.get("/api/v1/contacts").status_code == 200
    # another account from the same address signs in
    assert Browser(ctx).login("boss@example.com", "boss-secret").status_code == 303


def test_the_brake_is_keyed_by_address_and_forgets_after_its_window(ctx, clock, people):
    for _ in range(login_brake.ATTEMPTS_ALLOWED):
        login_brake.failed(ctx, "ann@example.com", "203.0.113.9")
    with pytest.raises(Exception) as braked:
        login_brake.check(ctx, "ANN@example.com", "203.0.113.9")
    assert braked.value.code == "too_many_attempts"
    login_brake.check(ctx, "ann@example.com", "198.51.100.7")  # another address: not braked
    clock.advance(login_brake.WINDOW)
    login_brake.check(ctx, "ann@example.com", "203.0.113.9")


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(ctx, people):
    from cadenza.services.context import Context

    def attempt(context, forwarded: str, password: str = "guess") -> int:
        browser = Browser(context, {"X-Forwarded-For": forwarded})
        browser.client = TestClient(
            browser.client.app, client=("10.0.0.5", 5000), headers=browser.client.headers
        )
        return browser.login("ann@example.com", password).status_code

    for _ in range(login_brake.ATTEMPTS_ALLOWED):
        attempt(ctx, "198.51.100.50")
    # no proxy trusted by default: the header changes nothing, the peer address is braked
    assert attempt(ctx, "198.51.100.51", "ann-secret") == 429
    settings = ctx.settings.model_copy(update={"trusted_proxies": "10.0.0.0/8"})
    behind = Context(db=ctx.db, clock=ctx.clock, settings=settings)
    for _ in range(login_brake.ATTEMPTS_ALLOWED):
        attempt(behind, "198.51.100.60")
    assert attempt(behind, "198.51.100.60", "ann-secret") == 429
    assert attempt(behind, "198.51.100.60, 10.0.0.9", "ann-secret") == 429  # proxies skipped
    assert attempt(behind, "198.51.100.61", "ann-secret") == 303  # another client


def test_password_hashes_carry_their_parameters_and_are_upgraded_at_login(ctx, people):
    _, member = people
    with ctx.db.transaction() as session:  # as an older version stored it
        session.get(User, member.id).password_hash = hash_password("ann-secret", cost=5)
    assert users.authenticate(ctx, "ann@example.com", "ann-secret") is not None
    with ctx.db.read() as session:
        stored = session.get(User, member.id).password_hash
    assert stored.startswith(f"scrypt$ln={ctx.settings.password_hash_cost},r=8,p=3$")
    assert users.authenticate(ctx, "ann@example.com", "wrong-one") is None


def test_readyz_says_only_ready_or_not(ctx, tmp_path):
    from cadenza.services.context import Context
    from cadenza.store.db import Database

    assert TestClient(create_app(ctx)).get("/readyz").json() == {"status": "ready"}
    own = Context(db=ctx.db, clock=ctx.clock, settings=ctx.settings)
    client = TestClient(create_app(own))
    own.db = empty = Database(f"sqlite:///{tmp_path / 'unmigrated.db'}")  # schema not current
    try:
        response = client.get("/readyz")
    finally:
        empty.dispose()
    assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_a_form_repeating_a_field_thousands_of_times_is_refused_not_a_500(ctx, people):
    ann = Browser(ctx)
    ann.login("ann@example.com", "ann-secret")
    token = ann.csrf("/settings")
    answer = ann.client.post(
        "/enrollments", data={"action": "pause", "enrollment": [str(i) for i in range(5000)]},
        headers={"X-CSRF-Token": token}, follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 400 and "Too many fields" in answer.text
