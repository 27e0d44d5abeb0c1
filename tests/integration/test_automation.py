"""Automation rules: triggers, conditions, actions, idempotence, loops, limits — both databases."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from cadenza.services.accounts.users import create_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.automation import runner as automation
from cadenza.services.crm import contacts, lists
from cadenza.services.enrollment import control as enrollment_control
from cadenza.store.models import AutomationRule, Enrollment, User
from tests.conftest import MISSING_ID, code_of, enroll_ids

PRO = {"all": [{"property": "plan", "op": "equals", "value": "pro"}]}


def enroll_rule(world, trigger, sequence=None, conditions=None, **action):
    return automation_rules.create_rule(
        world.ctx, None, name="enroll", sequence_id=(sequence or world.sequence).id,
        trigger=trigger, conditions=conditions,
        action={"type": "enroll", "user_id": world.user.id, **action},
    )  # fmt: skip


def unenroll_rule(world, trigger, scope="this", sequence=None):
    return automation_rules.create_rule(
        world.ctx, None, name="unenroll", sequence_id=(sequence or world.sequence).id,
        trigger=trigger, action={"type": "unenroll", "scope": scope},
    )  # fmt: skip


def live(ctx, contact_id):
    with ctx.db.read() as session:
        return [
            (e.sequence_id, e.state)
            for e in session.scalars(
                select(Enrollment)
                .where(Enrollment.contact_id == contact_id)
                .order_by(Enrollment.id)
            )
        ]


def runs(ctx, rule):
    """The run log in the order of the events acted on."""
    log = sorted(automation_rules.list_runs(ctx, rule.id, limit=500), key=lambda r: r.event_id)
    return [(r.contact_id, r.outcome, r.code) for r in log]


def test_active_list_change_enrolls_and_a_second_change_unenrolls(ctx, world, worker, clock):
    pro = lists.create_list(ctx, None, "Pro", "active", PRO).contact_list
    joins = enroll_rule(world, {"type": "list_added", "list_id": pro.id})
    leaves = unenroll_rule(world, {"type": "list_removed", "list_id": pro.id})
    ann = world.contact("ann@corp.example", properties={"plan": "free"})
    worker.tick()
    assert live(ctx, ann.id) == []
    contacts.update_contact(ctx, ann.id, {"properties": {"plan": "pro"}})
    worker.tick()
    assert live(ctx, ann.id) == [(world.sequence.id, "active")]
    assert runs(ctx, joins) == [(ann.id, "enrolled", None)]
    with ctx.db.read() as session:
        enrolled = session.scalar(select(Enrollment).where(Enrollment.contact_id == ann.id))
        assert enrolled.enrolled_by_id == world.user.id and enrolled.mailbox_id == world.mailbox.id
    clock.advance(timedelta(hours=1))
    contacts.update_contact(ctx, ann.id, {"properties": {"plan": "free"}})
    worker.tick()
    [(_, state)] = live(ctx, ann.id)
    assert state == "unenrolled" and runs(ctx, leaves) == [(ann.id, "unenrolled", None)]
    with ctx.db.read() as session:
        assert session.scalar(select(Enrollment.reason)) == "automation"
    assert code_of(lists.delete_list, ctx, None, pro.id) == "invalid_state"  # rules watch it


def test_property_changed_to_a_value_with_conditions(ctx, world):
    rule = enroll_rule(
        world, {"type": "property_changed", "property": "lifecycle", "value": "lead"},
        conditions={"all": [{"property": "email", "op": "contains", "value": "@corp"}]},
    )  # fmt: skip
    ann = world.contact("ann@corp.example")
    out = world.contact("out@other.example")
    contacts.update_contact(ctx, ann.id, {"properties": {"lifecycle": "customer"}})
    contacts.update_contact(ctx, ann.id, {"properties": {"lifecycle": "Lead"}})
    contacts.update_contact(ctx, out.id, {"properties": {"lifecycle": "lead"}})
    automation.run_pending(ctx)
    assert runs(ctx, rule) == [
        (ann.id, "enrolled", None), (out.id, "skipped", "conditions_not_met"),
    ]  # fmt: skip


def test_contact_created_and_already_enrolled_is_logged_not_retried(ctx, world):
    rule = enroll_rule(world, {"type": "contact_created"})
    ann = world.contact("ann@corp.example")
    automation.run_pending(ctx)
    second = enroll_rule(world, {"type": "property_changed", "property": "firstname"})
    contacts.update_contact(ctx, ann.id, {"firstname": "Annie"})
    automation.run_pending(ctx)
    automation.run_pending(ctx)
    assert runs(ctx, rule) == [(ann.id, "enrolled", None)]
    assert runs(ctx, second) == [(ann.id, "refused", "already_enrolled")]


def test_reply_and_finished_triggers(ctx, world, worker):
    """A reply ends an enrollment (the signal path: end_enrollment with reason replied);
    finishing the last step is recorded by the engine's fast path. Both trigger rules."""
    one_email = world.make_sequence(
        steps=[{"type": "email", "subject": "Hi", "body": "<p>Hi</p>"}], name="One"
    )
    nurture = world.make_sequence(name="Nurture")
    after_reply = enroll_rule(world, {"type": "replied", "sequence_id": world.sequence.id},
                              sequence=nurture)  # fmt: skip
    after_finish = enroll_rule(
        world, {"type": "enrollment_finished", "sequence_id": one_email.id}, sequence=nurture
    )
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    [first] = enroll_ids(world, [ann])
    enroll_ids(world, [bob], one_email)
    enrollment_control.unenroll(ctx, first, "replied")
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))  # bob's only email goes out
    automation.run_pending(ctx)
    assert runs(ctx, after_reply) == [(ann.id, "enrolled", None)]
    assert runs(ctx, after_finish) == [(bob.id, "enrolled", None)]
    assert live(ctx, bob.id) == [(one_email.id, "finished"), (nurture.id, "active")]


def test_a_rule_loop_is_stopped(ctx, world):
    """R1 unenrolls whoever is enrolled in S; R2 re-enrolls whoever leaves S. Without
    causality tracking they would feed each other forever."""
    kick = unenroll_rule(world, {"type": "enrolled", "sequence_id": world.sequence.id})
    back = enroll_rule(world, {"type": "unenrolled", "sequence_id": world.sequence.id})
    ann = world.contact("ann@corp.example")
    enroll_ids(world, [ann])
    for _ in range(10):
        if not automation.run_pending(ctx):
            break
    else:
        pytest.fail("the rules kept triggering each other")
    assert runs(ctx, kick) == [(ann.id, "unenrolled", None), (ann.id, "skipped", "loop_prevented")]
    # manual enroll -> R1 unenrolls -> R2 re-enrolls -> R1 would unenroll again: stopped,
    # since that enrollment was caused by a chain R1 is already part of
    assert runs(ctx, back) == [(ann.id, "enrolled", None)]
    assert [s for _, s in live(ctx, ann.id)] == ["unenrolled", "active"]


def test_a_trigger_seen_twice_acts_once(ctx, world):
    rule = enroll_rule(world, {"type": "contact_created"})
    ann = world.contact("ann@corp.example")
    automation.run_pending(ctx)
    with ctx.db.transaction() as session:  # as if the pass had to be replayed
        session.execute(update(AutomationRule).values(cursor=0))
    automation.run_pending(ctx)
    assert runs(ctx, rule) == [(ann.id, "enrolled", None)]
    assert len(live(ctx, ann.id)) == 1


def test_switched_off_rules_do_nothing_and_do_not_catch_up(ctx, world):
    rule = enroll_rule(world, {"type": "contact_created"})
    automation_rules.update_rule(ctx, None, rule.id, {"enabled": False})
    world.contact("ann@corp.example")
    automation.run_pending(ctx)
    automation_rules.update_rule(ctx, None, rule.id, {"enabled": True})
    automation.run_pending(ctx)
    assert runs(ctx, rule) == []
    bob = world.contact("bob@corp.example")
    automation.run_pending(ctx)
    assert runs(ctx, rule) == [(bob.id, "enrolled", None)]


def test_only_admins_create_rules_and_rules_act_within_their_user(ctx, world):
    member = world.user
    admin = create_user(ctx, "admin@example.com", role="admin")
    trigger = {"type": "contact_created"}
    action = {"type": "enroll", "user_id": member.id}
    assert code_of(
        automation_rules.create_rule, ctx, member.id, name="x",
        sequence_id=world.sequence.id, trigger=trigger, action=action,
    ) == "permission_denied"  # fmt: skip
    from cadenza.services.accounts.mailboxes import create_mailbox

    someone_elses = create_mailbox(ctx, admin.id, "admin@example.com")
    for bad_action, code in [
        ({**action, "mailbox_id": someone_elses.id}, "mailbox_not_yours"),
        ({**action, "user_id": MISSING_ID}, "user_not_found"),
        ({"type": "enroll"}, "validation_error"),
        ({"type": "unenroll", "scope": "everything"}, "validation_error"),
        ({"type": "notify"}, "validation_error"),
    ]:
        assert code_of(
            automation_rules.create_rule, ctx, admin.id, name="x",
            sequence_id=world.sequence.id, trigger=trigger, action=bad_action,
        ) == code, bad_action  # fmt: skip
    for bad_trigger in [{"type": "tuesday"}, {"type": "list_added"},
                        {"type": "contact_created", "list_id": 1},
                        {"type": "list_added", "list_id": MISSING_ID}]:  # fmt: skip
        assert code_of(
            automation_rules.create_rule, ctx, admin.id, name="x",
            sequence_id=world.sequence.id, trigger=bad_trigger, action=action,
        ) in ("validation_error", "not_found"), bad_trigger  # fmt: skip
    rule = automation_rules.create_rule(
        ctx, admin.id, name="x", sequence_id=world.sequence.id, trigger=trigger, action=action
    )
    with ctx.db.transaction() as session:  # the named user loses the enroll permission
        session.get(User, member.id).can_enroll = False
    ann = world.contact("ann@corp.example")
    automation.run_pending(ctx)
    assert runs(ctx, rule) == [(ann.id, "failed", "permission_denied")]


def test_daily_limit_holds_a_rule_until_midnight(ctx, world, clock):
    with ctx.db.transaction() as session:
        session.get(User, world.user.id).daily_enrollment_limit = 3
    rule = enroll_rule(world, {"type": "contact_created"})
    people = world.contacts(5)
    automation.run_pending(ctx)
    assert [o for _, o, _ in runs(ctx, rule)] == ["enrolled"] * 3
    assert automation.run_pending(ctx) == 0  # waiting for midnight in the user's zone
    with ctx.db.read() as session:
        resume_at = session.get(AutomationRule, rule.id).resume_at
    assert resume_at.isoformat() == "2026-03-03T05:00:00+00:00"  # midnight in New York
    clock.set(resume_at)
    automation.run_pending(ctx)
    assert [c for c, o, _ in runs(ctx, rule) if o == "enrolled"] == [p.id for p in people]


def test_two_runners_at_once_act_once_per_trigger(ctx, world):
    """Two workers' passes over the same rule at the same time: the rule's row lock (and
    the unique run key) let each trigger act exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    rule = enroll_rule(world, {"type": "contact_created"})
    people = world.contacts(60)

    def drain(_):
        while automation.run_pending(ctx):
            pass

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(drain, range(2)))
    assert sorted(c for c, o, _ in runs(ctx, rule) if o == "enrolled") == [p.id for p in people]
    assert len(runs(ctx, rule)) == 60
