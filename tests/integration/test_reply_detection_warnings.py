"""Reply detection is never silently off (issue 14 §2): enrolling through an SMTP
mailbox whose inbox is not read warns in every result (API, CLI), and the web dialog
refuses until the person confirms; a list job asks when it starts. Both databases."""

from __future__ import annotations

from cadenza.domain.errors import ErrorCode
from cadenza.services.accounts.mailboxes import create_mailbox, update_mailbox
from cadenza.services.crm import lists
from cadenza.services.enrollment import list_jobs
from cadenza.services.enrollment.enroll import ContactRequest, EnrollOptions, enroll
from cadenza.store.models import Enrollment
from tests.conftest import code_of, enroll_over_api

WARNING = "replies_not_detected"


def _enroll(world, contacts, **options):
    request = EnrollOptions(**options).request(
        world.sequence.id, world.user.id, [ContactRequest(c.id) for c in contacts]
    )
    return enroll(world.ctx, request)


def _enrollments(ctx) -> int:
    with ctx.db.read() as session:
        return session.query(Enrollment).count()


def test_each_result_carries_the_warning_and_the_enrollment_goes_ahead(ctx, world, smtp_box):
    results = _enroll(world, world.contacts(2))
    assert all(r.ok for r in results) and _enrollments(ctx) == 2
    for result in results:
        assert [w.code for w in result.warnings] == [WARNING]
        assert "rep@corp.example" in result.warnings[0].message
    refused = _enroll(world, [*world.contacts(1, prefix="again"), world.contact(None)])
    assert [r.warnings != [] for r in refused] == [True, False]  # only who is enrolled


def test_a_mailbox_that_reads_its_inbox_or_sends_nothing_real_has_no_warning(ctx, world, smtp_box):
    update_mailbox(ctx, smtp_box.id, {"imap_host": "127.0.0.1", "imap_port": 993})
    assert [r.warnings for r in _enroll(world, world.contacts(1))] == [[]]
    capture = create_mailbox(ctx, world.user.id, "cap@corp.example")  # transport capture
    [result] = _enroll(world, world.contacts(1, prefix="cap"), mailbox_id=capture.id)
    assert result.ok and result.warnings == []


def test_unconfirmed_nothing_is_written_and_a_dry_run_only_warns(ctx, world, smtp_box):
    contacts = world.contacts(2)
    request = EnrollOptions(confirmed_warnings=False).request(
        world.sequence.id, world.user.id, [ContactRequest(c.id) for c in contacts], dry_run=True
    )
    assert [w.code for r in enroll(ctx, request) for w in r.warnings] == [WARNING, WARNING]
    assert code_of(_enroll, world, contacts, confirmed_warnings=False) == (
        ErrorCode.WARNINGS_NOT_CONFIRMED
    )
    assert _enrollments(ctx) == 0


def test_a_list_job_asks_for_confirmation_when_it_starts(ctx, world, smtp_box):
    static = lists.create_list(ctx, None, "Prospects", "static").contact_list
    lists.change_members(ctx, None, static.id, add=[c.id for c in world.contacts(3)])
    unconfirmed = EnrollOptions(confirmed_warnings=False)
    assert code_of(
        list_jobs.start, ctx, world.user.id, static.id, world.sequence.id, unconfirmed
    ) == (ErrorCode.WARNINGS_NOT_CONFIRMED)
    job = list_jobs.start(ctx, world.user.id, static.id, world.sequence.id, EnrollOptions())
    assert job.total == 3


def test_the_api_reports_warnings_in_each_result(api, world, smtp_box):
    contacts = world.contacts(2)
    response = enroll_over_api(api, world, contacts)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [[w["code"] for w in r["warnings"]] for r in results] == [[WARNING], [WARNING]]
    assert all("not detected" in r["warnings"][0]["message"] for r in results)


def test_the_cli_prints_the_warning_once(cli, ctx, world, smtp_box):
    contacts = world.contacts(2)
    output = cli(
        "enroll", world.sequence.id, contacts[0].id, contacts[1].id, "--as", "rep@example.com"
    )
    assert "2 of 2 contacts enrolled" in output
    warned = [line for line in output.splitlines() if WARNING in line]
    assert warned and set(warned) == {warned[0]} and warned[0].startswith("warning")


def test_live_enrollments_without_reply_detection_are_counted_per_visible_mailbox(
    ctx, world, smtp_box, api
):
    from cadenza.services.enrollment.control import unenroll
    from cadenza.services.enrollment.views import live_without_reply_detection

    ids = _enroll(world, world.contacts(3))
    unenroll(ctx, ids[0].enrollment_id)  # no longer live: not counted
    [sender] = live_without_reply_detection(ctx, world.sequence.id, actor_id=world.user.id)
    assert (sender.mailbox_id, sender.from_email, sender.live) == (
        smtp_box.id,
        smtp_box.from_email,
        2,
    )
    admin = api.users["admin"].id
    assert live_without_reply_detection(ctx, world.sequence.id, actor_id=admin) == [sender]
    other = api.users["other"].id  # another member does not see the rep's mailbox
    assert live_without_reply_detection(ctx, world.sequence.id, actor_id=other) == []
