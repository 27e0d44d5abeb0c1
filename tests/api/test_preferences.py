"""A user's task reminder and digest preferences over the API, the settings page and the
CLI, with bad input refused and nothing written; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from cadenza.cli import app as cli_app
from cadenza.services.enrollment import reminders
from cadenza.services.enrollment.tasks import create_due_tasks
from cadenza.store.models import Task
from tests.conftest import assert_error, enroll_ids
from tests.support.rows import rows, write
from tests.ui.conftest import Ui, set_password

PATH = "/me/preferences"


def test_the_api_reads_and_changes_ones_own_preferences_and_refuses_bad_ones(api, ctx, world):
    got = api.get(PATH)
    assert got.status_code == 200
    assert got.json() == {
        "timing": "at_due", "minutes_before": 0, "digest": False, "digest_hour": 8,
        "timezone": "America/New_York", "digest_mailbox": "rep@example.com",
    }  # fmt: skip
    changed = api.patch(PATH, json={"timing": "before", "minutes_before": 90, "digest": True})
    assert changed.status_code == 200
    assert changed.json()["minutes_before"] == 90 and changed.json()["digest"] is True
    for bad in (
        {"timing": "sometimes"},
        {"minutes_before": 10081},
        {"minutes_before": -5},
        {"minutes_before": "30"},
        {"digest": "yes"},
        {"digest_hour": 24},
        {"digest_hour": None},
        {"timing": None},
        {"colour": "red"},
    ):
        assert_error(api.patch(PATH, json=bad), 422, "validation_error")
    assert_error(api.patch(PATH, content=b"{" * 10), 422, "validation_error")
    assert api.get(PATH).json()["minutes_before"] == 90  # nothing half-written
    # each user their own: the viewer's answer is the viewer's, an admin's the admin's
    assert api.patch(PATH, role="viewer", json={"digest_hour": 6}).json()["digest_hour"] == 6
    admin = api.get(PATH, role="admin").json()
    assert (admin["digest_hour"], admin["timezone"], admin["digest_mailbox"]) == (8, "UTC", None)
    assert api.get(PATH).json()["digest_hour"] == 8
    assert api.get(PATH, role=None).status_code == 401


def test_a_new_timing_moves_the_reminders_of_open_tasks_not_yet_due(api, ctx, world):
    calls = world.make_sequence(
        steps=[{"type": "task", "task_title": "Call"}], settings={"task_reminders": True},
        name="Calls",
    )  # fmt: skip
    quiet = world.make_sequence(steps=[{"type": "task", "task_title": "Note"}], name="Quiet")
    enroll_ids(world, [world.contact("a@corp.example")], calls)
    enroll_ids(world, [world.contact("b@corp.example")], quiet)
    enroll_ids(world, [world.contact("c@corp.example")], calls)
    assert create_due_tasks(ctx) == 3
    later, overdue, later_quiet = None, None, None
    for task in rows(ctx, Task):
        if task.remind_at is None:
            later_quiet = task  # its sequence has task reminders off
        elif later is None:
            later = task
        else:
            overdue = task
    due = ctx.clock.now() + timedelta(hours=3)
    for task in (later, later_quiet):
        write(ctx, Task, task.id, due_at=due)
    assert api.patch(PATH, json={"timing": "before", "minutes_before": 60}).status_code == 200
    remind = {t.id: t.remind_at for t in rows(ctx, Task)}
    assert remind[later.id] == due - timedelta(hours=1)
    assert remind[later_quiet.id] is None  # the sequence asked for no reminders
    assert remind[overdue.id] == overdue.remind_at  # already due: left as it was
    api.patch(PATH, json={"timing": "none"})
    assert {t.id: t.remind_at for t in rows(ctx, Task)}[later.id] is None


def note(page, key):
    return "".join(re.findall(rf'id="{key}-(?:error|notice)"[^>]*>([^<]*)<', page.text))


def test_the_settings_page_shows_and_saves_the_preferences(ctx, world):
    set_password(ctx, world.user.id, "pw")
    ui = Ui(ctx, world).sign_in("rep@example.com", "pw", "/settings")
    page = ui.client.get("/settings")
    assert 'name="digest_hour"' in page.text and "digests come from rep@example.com" in page.text
    form = {"csrf_token": ui.token, "timing": "before", "minutes_before": "15",
            "digest": "on", "digest_hour": "7"}  # fmt: skip
    saved = ui.client.post("/settings/preferences", data=form)
    assert saved.status_code == 200 and note(saved, "preferences") == "Reminders saved."
    prefs = reminders.get_preferences(ctx, world.user.id)
    assert (prefs.timing, prefs.minutes_before, prefs.digest, prefs.digest_hour) == (
        "before", 15, True, 7)  # fmt: skip
    assert 'value="7"' in saved.text and "selected>some minutes before" in saved.text
    for bad, says in (
        ({"digest_hour": "25"}, "digest_hour"),
        ({"digest_hour": "seven"}, "whole number"),
        ({"minutes_before": "99999"}, "minutes_before"),
        ({"timing": "<b>"}, "timing must be one of"),
    ):
        refused = ui.client.post("/settings/preferences", data={**form, **bad})
        assert refused.status_code == 422 and says in note(refused, "preferences")
    unticked = {k: v for k, v in form.items() if k != "digest"}
    assert ui.client.post("/settings/preferences", data=unticked).status_code == 200
    assert reminders.get_preferences(ctx, world.user.id).digest is False


@pytest.fixture
def cli(database, monkeypatch, world, tmp_path):
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
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


def test_cadenza_user_prefs_shows_and_changes_them(cli, ctx, world):
    assert cli("user", "prefs") == "task reminders: when due daily digest: off"
    changed = cli("user", "prefs", "--timing", "before", "--minutes-before", "20", "--digest")
    assert changed == (
        "task reminders: 20 minutes before due daily digest: at 08:00 America/New_York, "
        "from rep@example.com"
    )
    assert "digest_hour must be a whole number from 0 to 23" in cli(
        "user", "prefs", "--digest-hour", "30", ok=False
    )
    assert "timing must be one of" in cli("user", "prefs", "--timing", "soon", ok=False)
    assert reminders.get_preferences(ctx, world.user.id).minutes_before == 20
