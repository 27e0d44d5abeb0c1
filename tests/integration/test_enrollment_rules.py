"""Enrollment rules (issue 16 §5, docs/enrollment.md "Enrollment rules") through the enroll
service and the CLI, on SQLite and PostgreSQL: each rule refuses with its own code in the
dry run and the real run, a sequence's own rules over the installation's, an override
only with the permission (and audited), and the facts read in bulk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from cadenza.domain.enums import Exclusivity, Reenrollment
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.users import create_user, update_user
from cadenza.services.enrollment import control
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import AuditEntry, Enrollment
from tests.conftest import enroll_ids
from tests.support.seed import seed_due_emails

RULES = {"reenrollment": "once", "min_days_since_emailed": 7}


def request(world, contacts, sequence, **options) -> EnrollRequest:
    return EnrollRequest(
        sequence_id=sequence.id,
        user_id=options.pop("user_id", world.user.id),
        contacts=[ContactRequest(c.id) for c in contacts],
        **options,
    )


def outcome(results):
    return [(r.ok, r.code) for r in results]


def enrollments(ctx, contact_id, sequence_id=None):
    with ctx.db.read() as session:
        query = select(Enrollment.state).where(Enrollment.contact_id == contact_id)
        if sequence_id is not None:
            query = query.where(Enrollment.sequence_id == sequence_id)
        return list(session.scalars(query.order_by(Enrollment.id)))


def overrides_audited(ctx):
    with ctx.db.read() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "enrollment.override_rules")
        )
        return {e.data["contact_id"]: [o["rule"] for o in e.data["overridden"]] for e in entries}


def test_each_rule_refuses_then_an_override_needs_the_permission_and_is_audited(ctx, world, worker):
    ann, bob, cat, dan = (world.contact(f"{n}@corp.example") for n in ("ann", "bob", "cat", "dan"))
    nurture = world.make_sequence(name="Nurture")
    target = world.make_sequence(
        name="Target", settings={"follow_up_days": "weekdays", "enrollment_rules": RULES}
    )
    enroll_ids(world, [ann], sequence=nurture)  # live elsewhere
    [was_here] = enroll_ids(world, [bob], sequence=target)  # enrolled before
    control.unenroll(ctx, was_here)
    [emailed] = enroll_ids(world, [cat], sequence=nurture)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))  # cat's first email goes out
    control.unenroll(ctx, emailed)
    everyone = [ann, bob, cat, dan]
    expected = [
        (False, "in_another_sequence"), (False, "enrolled_before"),
        (False, "contacted_recently"), (True, None),
    ]  # fmt: skip
    dry = enroll(ctx, request(world, everyone, target, dry_run=True))
    assert outcome(dry) == expected
    assert "'Nurture'" in dry[0].message and dry[0].details["sequence_id"] == nurture.id
    assert f"{ctx.clock.now():%Y-%m-%d}" in dry[2].message and dry[2].details["last_emailed_at"]
    assert [r.overridable for r in dry] == [True, True, True, False]
    real = enroll(ctx, request(world, everyone, target))
    assert outcome(real) == expected and real[3].enrollment_id
    assert enrollments(ctx, ann.id, target.id) == []

    overriding = request(world, [ann, bob, cat], target, override_rules=[ann.id, bob.id, cat.id])
    with pytest.raises(CadenzaError) as refused:  # a member without the permission
        enroll(ctx, overriding)
    assert refused.value.code == ErrorCode.OVERRIDE_NOT_ALLOWED
    assert refused.value.http_status == 403 and overrides_audited(ctx) == {}
    admin = create_user(ctx, "boss@example.com", role="admin")
    update_user(ctx, world.user.id, can_override_enrollment_rules=True, actor_id=admin.id)
    dry_override = enroll(ctx, request(world, [ann], target, dry_run=True, override_rules=[ann.id]))
    assert outcome(dry_override) == [(True, None)] and overrides_audited(ctx) == {}
    done = enroll(ctx, overriding)
    assert outcome(done) == [(True, None)] * 3
    assert "rule_overridden" in [w.code for w in done[0].warnings]
    assert overrides_audited(ctx) == {
        ann.id: ["in_another_sequence", "contacted_recently"],  # the worker emailed her too
        bob.id: ["enrolled_before"], cat.id: ["contacted_recently"],
    }  # fmt: skip
    stray = request(world, [dan], target, override_rules=[ann.id], dry_run=True)
    with pytest.raises(CadenzaError) as caught:  # an override names this request's contacts
        enroll(ctx, stray)
    assert caught.value.code == ErrorCode.VALIDATION_ERROR
    smuggled = request(
        world, [dan], target, settings={"enrollment_rules": {"reenrollment": "any_time"}}
    )
    with pytest.raises(CadenzaError) as caught:  # rules are the sequence's, not a request's
        enroll(ctx, smuggled)
    assert caught.value.code == ErrorCode.VALIDATION_ERROR


def test_installation_defaults_and_a_sequences_own_rules(ctx, world):
    ctx.settings.enrollment_exclusivity = Exclusivity.EXCLUSIVE
    ctx.settings.enrollment_reenrollment = Reenrollment.ONCE
    ann = world.contact()
    first, second = world.sequence, world.make_sequence(name="Second")
    loose = world.make_sequence(
        name="Loose",
        settings={"enrollment_rules": {"exclusivity": "none", "reenrollment": "when_not_live"}},
    )
    [live] = enroll_ids(world, [ann], sequence=first)
    assert outcome(enroll(ctx, request(world, [ann], second))) == [(False, "in_another_sequence")]
    [loosely] = enroll_ids(world, [ann], sequence=loose)  # not exclusive: admitted
    control.unenroll(ctx, live)
    control.unenroll(ctx, loosely)
    assert outcome(enroll(ctx, request(world, [ann], first))) == [(False, "enrolled_before")]
    assert outcome(enroll(ctx, request(world, [ann], loose))) == [(True, None)]


def test_reenrollment_any_time_restarts_a_live_enrollment(ctx, world):
    ann = world.contact()
    again = world.make_sequence(
        name="Again", settings={"enrollment_rules": {"reenrollment": "any_time"}}
    )
    enroll_ids(world, [ann], sequence=again)
    [dry] = enroll(ctx, request(world, [ann], again, dry_run=True))
    assert dry.ok and "restarted" in [w.code for w in dry.warnings]
    assert enrollments(ctx, ann.id) == ["active"]
    other = create_user(ctx, "olive@example.com")
    from cadenza.services.accounts.mailboxes import create_mailbox

    mailbox = create_mailbox(ctx, other.id, "olive@example.com")
    [theirs] = enroll(ctx, request(world, [ann], again, user_id=other.id, mailbox_id=mailbox.id))
    assert (theirs.ok, theirs.code) == (False, "already_enrolled")  # not theirs to restart
    [mine] = enroll(ctx, request(world, [ann], again))
    assert mine.ok and enrollments(ctx, ann.id) == ["unenrolled", "active"]


def test_bulk_enroll_reads_each_rules_facts_once_whatever_the_number(ctx, world):
    """500 contacts, each live in another sequence: the same statements as for 5."""
    ctx.settings.enroll_bulk_limit = 500
    seed_due_emails(ctx, 500)
    with ctx.db.read() as session:
        seeded = list(session.scalars(select(Enrollment.contact_id).order_by(Enrollment.id)))
    target = world.make_sequence(name="Target", settings={"enrollment_rules": RULES})

    def statements(contact_ids):
        seen = []

        def grab(conn, cursor, statement, params, context, executemany):
            seen.append(statement)

        event.listen(ctx.db.engine, "before_cursor_execute", grab)
        try:
            results = enroll(
                ctx,
                EnrollRequest(
                    sequence_id=target.id, user_id=world.user.id, dry_run=True,
                    contacts=[ContactRequest(i) for i in contact_ids],
                ),
            )  # fmt: skip
        finally:
            event.remove(ctx.db.engine, "before_cursor_execute", grab)
        assert {r.code for r in results} == {"in_another_sequence"}
        return seen

    few, many = statements(seeded[:5]), statements(seeded)
    assert len(many) == len(few)
    assert sum("max(messages.sent_at)" in s for s in many) == 1  # contacted recently
    assert sum("FROM enrollments JOIN sequences" in s for s in many) == 1  # live elsewhere
    assert sum("SELECT DISTINCT enrollments.contact_id" in s for s in many) == 1  # before


def test_cli_names_the_refusal_and_overrides_only_with_the_permission(ctx, world, cli):
    ann = world.contact()
    other = world.make_sequence(name="Nurture")
    enroll_ids(world, [ann], sequence=other)
    create_user(ctx, "boss@example.com", role="admin")
    args = ("enroll", world.sequence.id, ann.id, "--as", "rep@example.com")
    out = cli(*args, "--dry-run", ok=False)
    assert f"contact {ann.id}: in_another_sequence" in out and "'Nurture'" in out
    assert f"--override {ann.id}" in out
    assert "override_not_allowed" in cli(*args, "--override", ann.id, ok=False)
    as_admin = ("enroll", world.sequence.id, ann.id, "--as", "boss@example.com")
    out = cli(*as_admin, "--mailbox", world.mailbox.id, "--override", ann.id)
    assert "enrolled (enrollment" in out and "rule_overridden" in out
    assert enrollments(ctx, ann.id, world.sequence.id) == ["active"]
