"""The web app's guards that were once removable unnoticed (issue 19, section 2), over HTTP.

Sessions end after SESSION_MAX_AGE; signing in replaces the CSRF token the login form
was given; and one member cannot open, complete or skip another member's task, nor see
or review a message sent from another member's mailbox. The ownership tests go through
the pages only, so they hold whichever layer (the web app or the services) enforces
the rule.
"""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from cadenza.domain.secrets import hash_password
from cadenza.services.accounts.users import create_user
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import tasks
from cadenza.store.models import User
from cadenza.web.ui import session_secret
from cadenza.web.ui.session import COOKIE_NAME, SESSION_MAX_AGE, SessionCodec
from tests.conftest import crash_while_handing_over, enroll_ids
from tests.ui.conftest import Ui


def signed_in(ctx, world, email: str) -> Ui:
    with ctx.db.transaction() as session:
        session.query(User).filter_by(email=email).one().password_hash = hash_password(
            "pw", ctx.settings.password_hash_cost
        )
    ui = Ui(ctx, world)
    assert ui.login(email, "pw").status_code == 303
    return ui


def aged(ctx, cookie: str, seconds: int) -> str:
    """The same session cookie, as if it had been issued `seconds` ago."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    secret = session_secret(ctx)
    data = SessionCodec(secret).load(cookie).data
    assert "uid" in data  # a real signed-in session, re-dated
    serializer = URLSafeTimedSerializer(secret, salt="cadenza.ui.session", signer=Then)
    return serializer.dumps(data)


@pytest.mark.parametrize(
    ("age", "signed_in_still"),
    [(SESSION_MAX_AGE - 120, True), (SESSION_MAX_AGE + 120, False)],
)
def test_a_session_ends_after_its_maximum_age(ctx, world, age, signed_in_still):
    ui = signed_in(ctx, world, world.user.email)
    cookie = ui.client.cookies.get(COOKIE_NAME)
    ui.client.cookies.set(COOKIE_NAME, aged(ctx, cookie, age))
    answer = ui.client.get("/contacts", follow_redirects=False)
    if signed_in_still:
        assert answer.status_code == 200
    else:
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/contacts"


def test_signing_in_replaces_the_csrf_token_of_the_login_form(ctx, world):
    with ctx.db.transaction() as session:
        session.get(User, world.user.id).password_hash = hash_password(
            "pw", ctx.settings.password_hash_cost
        )
    ui = Ui(ctx, world)
    before = ui.csrf("/login")  # what the login page showed (and a third party could see)
    answer = ui.client.post(
        "/login",
        data={"email": world.user.email, "password": "pw", "csrf_token": before},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    after = ui.csrf("/contacts")
    assert after != before
    replayed = ui.client.post("/logout", data={"csrf_token": before}, follow_redirects=False)
    assert replayed.status_code == 403 and "csrf_failed" in replayed.text
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 200
    fresh = ui.client.post("/logout", data={"csrf_token": after}, follow_redirects=False)
    assert fresh.status_code == 303


CALL_FIRST = [{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}"}]


@pytest.fixture
def two_members(ctx, world):
    create_user(ctx, "bee@example.com", firstname="Bee")
    return signed_in(ctx, world, world.user.email), signed_in(ctx, world, "bee@example.com")


def test_a_member_cannot_open_complete_or_skip_another_members_task(
    ctx, world, worker, two_members
):
    owner, other = two_members
    sequence = world.make_sequence(steps=CALL_FIRST, name="Calls")
    enroll_ids(world, [world.contact()], sequence=sequence)
    worker.tick()
    [task] = tasks.list_tasks(ctx, owner_id=world.user.id)
    assert owner.client.get(f"/tasks/{task.id}").status_code == 200  # it exists, for its owner
    token = other.csrf("/tasks")
    assert "Call Ann" not in other.client.get("/tasks").text
    assert other.client.get(f"/tasks/{task.id}").status_code == 404
    for action in ("complete", "skip"):
        answer = other.client.post(f"/tasks/{task.id}/{action}", data={"csrf_token": token})
        assert answer.status_code == 404, action
    assert tasks.get_task(ctx, task.id).status == "open"


def test_a_member_cannot_see_or_review_a_message_from_another_members_mailbox(
    ctx, world, worker, two_members
):
    owner, other = two_members
    enroll_ids(world, [world.contact()])
    crash_while_handing_over(ctx, worker)  # a send whose outcome a person must review
    [message] = outbox.list_messages(ctx, status="unknown")
    assert owner.client.get(f"/outbox/{message.id}").status_code == 200
    token = other.csrf("/outbox")
    assert message.subject not in other.client.get("/outbox").text
    assert other.client.get(f"/outbox/{message.id}").status_code == 404
    assert other.client.get(f"/outbox/{message.id}/body").status_code == 404
    for delivered in ("yes", "no"):
        answer = other.client.post(
            f"/outbox/{message.id}/review", data={"csrf_token": token, "delivered": delivered}
        )
        assert answer.status_code == 404, delivered
    assert outbox.get_message(ctx, message.id)[0].status == "unknown"


def test_signing_out_ends_the_session_and_a_fresh_login_form_works(ctx, world):
    ui = signed_in(ctx, world, world.user.email)
    before = ui.csrf("/contacts")
    out = ui.client.post("/logout", data={"csrf_token": before}, follow_redirects=False)
    assert out.status_code == 303
    assert ui.client.get("/contacts", follow_redirects=False).status_code == 303
    after = ui.csrf("/login")
    assert after != before  # the signed-in session's token dies with it
    again = ui.client.post(
        "/login",
        data={"email": world.user.email, "password": "pw", "csrf_token": after},
        follow_redirects=False,
    )
    assert again.status_code == 303


def test_a_viewer_is_told_why_a_change_is_refused(ctx, world):
    create_user(ctx, "view@example.com", role="viewer")
    viewer = signed_in(ctx, world, "view@example.com")
    token = viewer.csrf("/contacts")
    refused = viewer.client.post("/tasks/1/skip", data={"csrf_token": token})
    assert refused.status_code == 403
    assert "viewers can read but not change anything" in refused.text
