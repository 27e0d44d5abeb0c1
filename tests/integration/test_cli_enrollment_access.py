"""The CLI's enrollment commands act as the CLI's user, under the one access policy.

A member cannot pause, resume, unenroll, show or list another member's enrollment from
the command line, any more than from the API or the web app; viewers never enroll and
a member sends only from their own mailbox. On both databases.
"""

import pytest

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Enrollment

OWNER = "rep@example.com"  # the world's member, who enrolled and owns the mailbox
OTHER = "bea@example.com"
VIEWER = "vic@example.com"
ADMIN = "ada@example.com"


@pytest.fixture
def team(ctx, world):
    """The world's member with one enrollment, and another member, a viewer, an admin."""
    other = create_user(ctx, OTHER)
    create_mailbox(ctx, other.id, OTHER)
    create_user(ctx, VIEWER, role="viewer")
    create_user(ctx, ADMIN, role="admin")
    contact = world.contact()
    request = EnrollRequest(world.sequence.id, world.user.id, [ContactRequest(contact.id)])
    [result] = enroll(ctx, request)
    assert result.ok, result
    return result.enrollment_id


def state(database, enrollment_id):
    with database.read() as session:
        return session.get(Enrollment, enrollment_id).state


@pytest.mark.parametrize("command", ["pause", "unenroll"])
def test_another_member_cannot_change_an_enrollment_from_the_cli(cli, database, team, command):
    refused = cli("enrollments", command, team, "--as", OTHER, ok=False)
    assert "enrollment_not_found" in refused  # to another member it does not exist
    refused = cli("enrollments", command, team, "--as", VIEWER, ok=False)
    assert "permission_denied" in refused
    assert state(database, team) == "active"


def test_resume_is_the_owners_or_an_admins_too(cli, database, team):
    cli("enrollments", "pause", team, "--as", OWNER)
    assert state(database, team) == "paused"
    assert "enrollment_not_found" in cli("enrollments", "resume", team, "--as", OTHER, ok=False)
    assert state(database, team) == "paused"
    cli("enrollments", "resume", team, "--as", ADMIN)
    assert state(database, team) == "active"


def test_the_cli_user_is_taken_from_the_environment_too(cli, database, team, monkeypatch):
    monkeypatch.setenv("CADENZA_CLI_USER", OTHER)
    assert "enrollment_not_found" in cli("enrollments", "unenroll", team, ok=False)
    assert state(database, team) == "active"
    monkeypatch.setenv("CADENZA_CLI_USER", OWNER)
    cli("enrollments", "unenroll", team)
    assert state(database, team) == "unenrolled"


def test_with_several_users_and_none_chosen_nothing_is_changed(cli, database, team):
    assert "CADENZA_CLI_USER" in cli("enrollments", "pause", team, ok=False)
    assert state(database, team) == "active"


def test_show_events_and_list_answer_as_the_cli_user(cli, team):
    assert "enrollment_not_found" in cli("enrollments", "show", team, "--as", OTHER, ok=False)
    assert "enrollment_not_found" in cli("enrollments", "events", team, "--as", OTHER, ok=False)
    assert "enrolled" in cli("enrollments", "events", team, "--as", OWNER)
    assert f"enrollment {team}" in cli("enrollments", "show", team, "--as", OWNER)
    assert "ann@corp.example" not in cli("enrollments", "list", "--as", OTHER)
    assert "ann@corp.example" in cli("enrollments", "list", "--as", OWNER)
    assert "ann@corp.example" in cli("enrollments", "list", "--as", VIEWER)  # reads all


def test_enrolling_from_the_cli_follows_the_enroll_rule(cli, ctx, world, team):
    """Viewers never enroll (their enroll permission notwithstanding); a member sends
    only from their own mailbox; an admin may send from anyone's."""
    sequence, contact = world.sequence.id, world.contact("bob@corp.example").id
    refused = cli("enroll", sequence, contact, "--as", VIEWER, ok=False)
    assert "permission_denied" in refused
    mailbox = world.mailbox.id
    refused = cli("enroll", sequence, contact, "--mailbox", mailbox, "--as", OTHER, ok=False)
    assert "mailbox_not_yours" in refused
    assert "enrolled (enrollment" in cli(
        "enroll", sequence, contact, "--mailbox", mailbox, "--as", ADMIN
    )
