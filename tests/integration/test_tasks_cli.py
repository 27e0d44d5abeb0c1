"""`cadenza tasks`: filters, completing with an outcome, rescheduling and the team's
outcomes, as the CLI's user under the one policy, with bad input. On both databases."""

from datetime import UTC, datetime, timedelta

import pytest

from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment import tasks
from tests.conftest import enroll_ids

REP = "rep@example.com"  # the world's member
OTHER = "bea@example.com"
ADMIN = "ada@example.com"
STEPS = [{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}",
          "task_priority": "high"}]  # fmt: skip


@pytest.fixture
def call(ctx, world):
    """An open call task of the world's member."""
    create_user(ctx, OTHER)
    create_user(ctx, ADMIN, role="admin")
    sequence = world.make_sequence(steps=STEPS, name="Calls")
    enroll_ids(world, [world.contact()], sequence)
    tasks.create_due_tasks(ctx)
    [task] = tasks.list_tasks(ctx)
    return task


def test_list_filters_and_complete_with_an_outcome(cli, ctx, call):
    listed = cli("tasks", "list", "--type", "call", "--priority", "high", "--as", REP)
    assert "Call Ann" in listed
    assert "Call Ann" not in cli("tasks", "list", "--type", "linkedin", "--as", REP)
    assert "Call Ann" in cli("tasks", "list", "--sort", "local", "--due", "overdue", "--as", REP)
    for bad, code in (
        (["--outcome", "inmail"], "unknown_outcome"),
        (["--outcome", "connected", "--duration", "-5"], "validation_error"),
        (["--notes", "x" * 10_001], "validation_error"),
    ):
        refused = cli("tasks", "complete", call.id, *bad, "--as", REP, ok=False)
        assert code in refused and "Traceback" not in refused
    assert "validation_error" in cli("tasks", "list", "--due", "soon", "--as", REP, ok=False)
    assert "not_found" in cli("tasks", "complete", call.id, "--as", OTHER, ok=False)
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert "now due" in cli("tasks", "reschedule", call.id, "--at", later, "--as", REP)
    assert "validation_error" in cli(
        "tasks", "reschedule", call.id, "--at", "tomorrow", "--as", REP, ok=False
    )
    done = cli(
        "tasks", "complete", call.id, "--outcome", "left_voicemail", "--duration", "30",
        "--notes", "call back Friday", "--as", REP,
    )  # fmt: skip
    assert f"task {call.id} completed: Left voicemail · 30 s" in done
    logged = tasks.get_task(ctx, call.id)
    assert (logged.outcome, logged.duration_seconds, logged.outcome_notes) == (
        "left_voicemail", 30, "call back Friday")  # fmt: skip
    assert "Left voicemail" in cli("tasks", "list", "--status", "completed", "--as", REP)


def test_outcomes_are_listed_by_all_and_managed_by_admins(cli, call):
    assert "meeting_booked" in cli("tasks", "outcomes", "list", "--type", "call", "--as", REP)
    refused = cli("tasks", "outcomes", "add", "demo_set", "Demo set", "--type", "call",
                  "--as", REP, ok=False)  # fmt: skip
    assert "permission_denied" in refused
    assert "added" in cli(
        "tasks", "outcomes", "add", "demo_set", "Demo set", "--type", "call", "--ends",
        "--as", ADMIN,
    )  # fmt: skip
    assert "conflict" in cli("tasks", "outcomes", "add", "demo_set", "Again", "--type", "call",
                             "--as", ADMIN, ok=False)  # fmt: skip
    assert "validation_error" in cli("tasks", "outcomes", "add", "Bad Key", "X", "--type",
                                     "call", "--as", ADMIN, ok=False)  # fmt: skip
    assert "demo_set" in cli("tasks", "outcomes", "list", "--as", REP)
    cli("tasks", "complete", call.id, "--outcome", "demo_set", "--as", REP)
    assert "removed" in cli("tasks", "outcomes", "remove", "demo_set", "--as", ADMIN)
    assert "not_found" in cli("tasks", "outcomes", "remove", "demo_set", "--as", ADMIN, ok=False)
