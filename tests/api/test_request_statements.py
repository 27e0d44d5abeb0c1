"""What the two busiest API requests ask the database (issue 15 §3), counted, not timed.

`GET /enrollments/{id}` asks a fixed number of questions however far the enrollment
went; a 50-contact dry-run enroll asks as many as a one-contact one, and as a read:
no write lock (SQLite) and no row locks (PostgreSQL), so previews never queue behind
each other or behind enrollments. A real enroll still locks its contacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.conftest import enroll_ids
from tests.conftest import enroll_over_api as enroll
from tests.support.signals import send_first_emails


@contextmanager
def statements(ctx) -> Iterator[list[str]]:
    """The SQL statements run meanwhile, transaction control (BEGIN) left out: psycopg
    begins without a statement of its own, SQLite with one."""
    seen: list[str] = []

    def note(_connection, _cursor, statement, *_args) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            seen.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", note)


@contextmanager
def transaction_starts(ctx) -> Iterator[list[str]]:
    """The BEGIN statements SQLite is sent (DEFERRED: a read; IMMEDIATE: the write lock)."""
    seen: list[str] = []

    def note(_connection, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("BEGIN"):
            seen.append(statement.strip().upper())

    event.listen(ctx.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", note)


def read_enrollment(api, enrollment_id: int, role: str = "member") -> tuple[dict, list[str]]:
    with statements(api.ctx) as asked:
        response = api.get(f"/enrollments/{enrollment_id}", role=role)
    assert response.status_code == 200, response.text
    return response.json(), asked


def test_reading_an_enrollment_asks_three_questions_however_far_it_went(api, world, worker):
    sent = send_first_emails(api.ctx, world, worker, ["ann"])
    (_, progressed_id, message) = sent["ann"]
    fresh_id = enroll_ids(world, [world.contact("fresh@corp.example")])[0]
    api.get(f"/enrollments/{fresh_id}")  # the token's first use is recorded (a write)

    fresh, fresh_asked = read_enrollment(api, fresh_id)
    progressed, progressed_asked = read_enrollment(api, progressed_id)

    assert [s["status"] for s in fresh["steps"]] == ["pending", "projected", "projected"]
    assert [s["status"] for s in progressed["steps"]] == ["sent", "pending", "projected"]
    assert progressed["steps"][0]["title"] == message.subject == "Hi Ann"
    # The token and its user; the enrollment with its contact, sequence, mailbox, runs
    # and enroller; the messages sent. Not a question per step, run or message.
    assert len(fresh_asked) == len(progressed_asked) == 3, progressed_asked


def test_an_admin_reading_someone_elses_enrollment_costs_one_question_more(api, world):
    [enrollment_id] = enroll_ids(world, [world.contact()])
    for role in ("admin", "member"):
        api.get(f"/enrollments/{enrollment_id}", role=role)  # each token's use recorded

    as_admin, asked_by_admin = read_enrollment(api, enrollment_id, role="admin")
    as_member, asked_by_member = read_enrollment(api, enrollment_id, role="member")

    assert as_admin == as_member  # titles are filled with the enroller's values either way
    assert as_member["steps"][0]["title"] == "Hi Ann"
    assert len(asked_by_admin) == len(asked_by_member) + 1  # the acting admin themself


def test_another_member_is_told_the_enrollment_does_not_exist(api, world):
    [enrollment_id] = enroll_ids(world, [world.contact()])
    response = api.get(f"/enrollments/{enrollment_id}", role="other")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "enrollment_not_found"


def dry_run(api, world, contacts) -> tuple[list[dict], list[str]]:
    with statements(api.ctx) as asked:
        response = enroll(api, world, contacts, dry_run=True)
    assert response.status_code == 200, response.text
    return response.json()["results"], asked


def test_a_dry_run_asks_as_much_for_fifty_contacts_as_for_one(api, world):
    contacts = world.contacts(50)
    api.get("/enrollments")  # token use recorded

    [one], asked_for_one = dry_run(api, world, contacts[:1])
    fifty, asked_for_fifty = dry_run(api, world, contacts)

    assert [r["ok"] for r in fifty] == [True] * 50
    assert all(r["schedule"] == one["schedule"] for r in fifty)
    assert len(asked_for_fifty) == len(asked_for_one), asked_for_fifty
    # no step of this sequence has variants: no decided winner is read for them
    assert not any("step_variant_winners" in s for s in asked_for_fifty), asked_for_fifty


def test_a_dry_run_takes_no_lock_and_an_enrollment_does(api, world):
    contacts = world.contacts(3)
    api.get("/enrollments")  # token use recorded

    with transaction_starts(api.ctx) as begun:
        results, asked = dry_run(api, world, contacts)
    assert [r["ok"] for r in results] == [True] * 3
    assert not any("FOR UPDATE" in s.upper() for s in asked)
    assert "BEGIN IMMEDIATE" not in begun  # SQLite: the write lock is not taken

    with statements(api.ctx) as asked, transaction_starts(api.ctx) as begun:
        response = enroll(api, world, contacts)
    assert [r["ok"] for r in response.json()["results"]] == [True] * 3
    if api.ctx.db.dialect == "sqlite":
        assert "BEGIN IMMEDIATE" in begun
    else:
        assert any("FOR UPDATE" in s.upper() for s in asked)
