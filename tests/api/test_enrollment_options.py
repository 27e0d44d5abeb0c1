"""One set of enrollment options (mailbox, start step, zone, send time, follow-up
settings, values for everyone) in the API, the CLI and a whole list's job (issue 11
items 3 and 5), on both databases."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cadenza.cli import app as cli_app
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.crm import lists
from cadenza.services.crm.contacts import create_contact
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.store.models import Enrollment, ListEnrollJob
from tests.conftest import assert_error

OVERRIDES = {
    "follow_up_days": "every_day",
    "send_window": {"start": "10:00", "end": "12:00"},
    "task_reminders": True,
}


def _enrollment(ctx, contact_id) -> Enrollment:
    with ctx.db.read() as session:
        return session.scalar(select(Enrollment).where(Enrollment.contact_id == contact_id))


def test_api_takes_follow_up_settings_and_values_for_everyone(api, ctx, world):
    named = world.contact("ann@corp.example", firstname="Ann")
    nameless = create_contact(ctx, {"email": "nobody@corp.example"})
    response = api.post(
        f"/sequences/{world.sequence.id}/enrollments",
        json={
            "contacts": [{"contact_id": named.id}, {"contact_id": nameless.id}],
            "settings": OVERRIDES,
            "token_values": {"firstname": "there"},
        },
    )
    assert response.status_code == 200, response.text
    assert [r["ok"] for r in response.json()["results"]] == [True, True]
    snapshot = _enrollment(ctx, named.id).settings_snapshot
    assert snapshot["follow_up_days"] == "every_day"  # the sequence says weekdays
    assert snapshot["send_window"] == {"start": "10:00", "end": "12:00"}
    assert snapshot["task_reminders"] is True and snapshot["thread_follow_ups"] is True
    assert _enrollment(ctx, named.id).token_values == {}  # Ann keeps her own first name
    assert _enrollment(ctx, nameless.id).token_values == {"contact.firstname": "there"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"bogus": 1},
        {"follow_up_days": "sometimes"},
        {"auto_reply_pause_days": 0},
        {"send_window": {"start": "18:00", "end": "08:00"}},
        {"follow_up_days": "business_days"},  # needs a holiday country
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(api, ctx, world, overrides):
    contact = world.contact()
    response = api.post(
        f"/sequences/{world.sequence.id}/enrollments",
        json={"contacts": [{"contact_id": contact.id}], "settings": overrides},
    )
    assert_error(response, 422, "validation_error")
    assert _enrollment(ctx, contact.id) is None


def test_bad_token_names_for_everyone_are_refused(api, world):
    contact = world.contact()
    response = api.post(
        f"/sequences/{world.sequence.id}/enrollments",
        json={"contacts": [{"contact_id": contact.id}], "token_values": {"nope.x": "1"}},
    )
    assert_error(response, 422, "validation_error")


def test_a_whole_list_takes_the_same_options(api, ctx, world):
    """Two mailboxes: the list job needs one chosen, like the dialog; every option the
    dialog has reaches each member's enrollment."""
    second = create_mailbox(ctx, world.user.id, "rep2@example.com", from_name="Riley")
    named = world.contact("ann@corp.example", firstname="Ann")
    nameless = create_contact(ctx, {"email": "nobody@corp.example"})
    members = lists.create_list(ctx, None, "Prospects", "static").contact_list
    lists.change_members(ctx, None, members.id, add=[named.id, nameless.id])
    path = f"/lists/{members.id}/enrollments"
    base = {"sequence_id": world.sequence.id}
    assert_error(api.post(path, json=base), 422, "mailbox_required")
    body = {
        **base,
        "mailbox_id": second.id,
        "start_step": 2,
        "timezone": "Europe/Berlin",
        "send_at": "2026-03-04T08:30",
        "settings": OVERRIDES,
        "token_values": {"firstname": "there"},
    }
    assert_error(api.post(path, json={**body, "settings": {"bogus": 1}}), 422, "validation_error")
    assert_error(api.post(path, json={**body, "timezone": "Mars/Base"}), 422, "invalid_timezone")
    assert_error(api.post(path, json={**body, "start_step": 9}), 422, "invalid_start_step")
    with ctx.db.read() as session:
        assert session.scalar(select(ListEnrollJob)) is None  # nothing half-started
    started = api.post(path, json=body)
    assert started.status_code == 202, started.text
    list_enrollment.run_due(ctx)
    job = api.get(f"/list-enrollments/{started.json()['id']}").json()
    assert (job["status"], job["enrolled"], job["mailbox_id"]) == ("done", 2, second.id)
    for contact in (named, nameless):
        enrollment = _enrollment(ctx, contact.id)
        assert enrollment.mailbox_id == second.id and enrollment.start_step == 2
        assert enrollment.timezone == "Europe/Berlin"
        assert enrollment.settings_snapshot["send_window"] == {"start": "10:00", "end": "12:00"}
        local_send = enrollment.send_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local_send.day, local_send.hour, local_send.minute) == (4, 8, 30)
    assert _enrollment(ctx, nameless.id).token_values == {"contact.firstname": "there"}
    assert _enrollment(ctx, named.id).token_values == {}


@pytest.fixture
def cli(database, monkeypatch, world, tmp_path):
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
    # the test's own key file: on PostgreSQL the default is ./cadenza.key, in the checkout
    monkeypatch.setenv("CADENZA_KEY_FILE", str(tmp_path / "cli.key"))
    monkeypatch.setenv("CADENZA_CLI_USER", world.user.email)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(cli_app, [str(a) for a in args])
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert (result.exit_code == 0) is ok, output
        return " ".join(output.split())

    return run


def test_cli_enroll_takes_settings_and_values_for_everyone(cli, ctx, world):
    nameless = create_contact(ctx, {"email": "nobody@corp.example"})
    refused = cli("enroll", world.sequence.id, nameless.id, "--setting", "colour=red", ok=False)
    assert "unknown setting(s) colour" in refused and "follow_up_days" in refused
    bad = cli("enroll", world.sequence.id, nameless.id, "--setting", "send_window=9-8", ok=False)
    assert "validation_error" in bad
    assert _enrollment(ctx, nameless.id) is None
    out = cli(
        "enroll", world.sequence.id, nameless.id,
        "--setting", "follow_up_days=every_day", "--setting", "send_window=10:00-12:00",
        "--setting", "task_reminders=yes", "--token", "firstname=there",
    )  # fmt: skip
    assert "1 of 1 contacts enrolled" in out
    enrollment = _enrollment(ctx, nameless.id)
    assert enrollment.settings_snapshot["follow_up_days"] == "every_day"
    assert enrollment.settings_snapshot["send_window"] == {"start": "10:00", "end": "12:00"}
    assert enrollment.settings_snapshot["task_reminders"] is True
    assert enrollment.token_values == {"contact.firstname": "there"}


def test_cli_list_enroll_takes_the_same_options(cli, ctx, world):
    second = create_mailbox(ctx, world.user.id, "rep2@example.com")
    contact = world.contact()
    members = lists.create_list(ctx, None, "Prospects", "static").contact_list
    lists.change_members(ctx, None, members.id, add=[contact.id])
    assert "mailbox_required" in cli(
        "lists", "enroll", members.id, "--sequence", world.sequence.id, ok=False
    )
    out = cli(
        "lists", "enroll", members.id, "--sequence", world.sequence.id,
        "--mailbox", second.id, "--start-step", 2, "--setting", "follow_up_days=every_day",
    )  # fmt: skip
    assert "1 members" in out
    list_enrollment.run_due(ctx)
    enrollment = _enrollment(ctx, contact.id)
    assert (enrollment.mailbox_id, enrollment.start_step) == (second.id, 2)
    assert enrollment.settings_snapshot["follow_up_days"] == "every_day"
