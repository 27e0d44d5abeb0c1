"""Whole lists enrolled in batches: by a job with a progress resource, and by automation
at scale (5,000 members) within every throttle, on both databases."""

from datetime import timedelta

from sqlalchemy import func, insert, select

from cadenza.services.automation import rules as automation_rules
from cadenza.services.automation import runner as automation
from cadenza.services.crm import lists
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.store.models import (
    AutomationRule,
    AutomationRun,
    Contact,
    Enrollment,
    Message,
    User,
)
from tests.conftest import MISSING_ID, spaced_ok
from tests.support.seed import _next_id, _resync_sequences


def seed_contacts(ctx, count: int) -> list[int]:
    """Contacts written in bulk (as tests/support/seed.py does): the service path per
    contact would dominate the test."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        first = _next_id(session, Contact)
        session.execute(
            insert(Contact),
            [
                {"id": first + i, "email": f"m{i}@corp.example", "email_key": f"m{i}@corp.example",
                 "firstname": "Max", "properties": {}, "blocked": False,
                 "created_at": now, "updated_at": now}
                for i in range(count)
            ],
        )  # fmt: skip
    _resync_sequences(ctx)
    return list(range(first, first + count))


def set_daily_limit(ctx, user_id, limit):
    with ctx.db.transaction() as session:
        session.get(User, user_id).daily_enrollment_limit = limit


def test_list_enrollment_job_reports_progress(ctx, world, clock):
    ids = seed_contacts(ctx, 120)
    with ctx.db.transaction() as session:
        session.get(Contact, ids[7]).unsubscribed_at = clock.now()
    static = lists.create_list(ctx, None, "Big", "static").contact_list
    lists.change_members(ctx, None, static.id, add=ids)
    set_daily_limit(ctx, world.user.id, 100)
    job = list_enrollment.start(ctx, world.user.id, static.id, world.sequence.id)
    assert list_enrollment.describe(job)["status"] == "running" and job.total == 120
    assert list_enrollment.run_batch(ctx, job.id, clock.now()) == 50  # one bulk-limit batch
    progress = list_enrollment.describe(list_enrollment.get_job(ctx, job.id))
    assert (progress["processed"], progress["enrolled"], progress["refused"]) == (50, 49, 1)
    assert progress["refusals"] == {"unsubscribed": 1}
    list_enrollment.run_due(ctx)
    waiting = list_enrollment.get_job(ctx, job.id)
    assert waiting.enrolled == 100 and waiting.resume_at is not None  # the daily limit
    assert list_enrollment.run_due(ctx) == 0
    clock.set(waiting.resume_at)
    list_enrollment.run_due(ctx)
    done = list_enrollment.describe(list_enrollment.get_job(ctx, job.id))
    assert (done["status"], done["processed"], done["enrolled"], done["refused"]) == (
        "done", 120, 119, 1,
    )  # fmt: skip
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 119
        assert session.scalar(select(func.count()).where(Enrollment.bulk.is_(False))) == 0


def test_list_enrollment_job_refuses_what_cannot_start(ctx, world):
    import pytest

    from cadenza.domain.errors import CadenzaError

    static = lists.create_list(ctx, None, "Empty", "static").contact_list
    with pytest.raises(CadenzaError) as empty:
        list_enrollment.start(ctx, world.user.id, static.id, world.sequence.id)
    with pytest.raises(CadenzaError) as no_sequence:
        list_enrollment.start(ctx, world.user.id, static.id, MISSING_ID)
    with pytest.raises(CadenzaError) as no_list:
        list_enrollment.start(ctx, world.user.id, MISSING_ID, world.sequence.id)
    assert (empty.value.code, no_sequence.value.code, no_list.value.code) == (
        "no_contacts", "sequence_not_found", "not_found",
    )  # fmt: skip


def test_automation_enrolls_a_500_member_list_within_every_throttle(ctx, world, worker, clock):
    """Bulk limit per batch (50: ten batches), the user's daily limit (200 a day here: the
    list takes three days), and the engine's bulk first-step pace of 3 a minute per
    mailbox. (It enrolled 5,000 at 2,000 a day before: the same limits, at ten times
    the cost in time.)"""
    set_daily_limit(ctx, world.user.id, 200)
    one_email = world.make_sequence(
        steps=[{"type": "email", "subject": "Hi", "body": "<p>Hi</p>"}], name="One"
    )
    target = lists.create_list(ctx, None, "Conference", "static").contact_list
    rule = automation_rules.create_rule(
        ctx, None, name="conference", sequence_id=one_email.id,
        trigger={"type": "list_added", "list_id": target.id},
        action={"type": "enroll", "user_id": world.user.id, "mailbox_id": world.mailbox.id},
    )  # fmt: skip
    ids = seed_contacts(ctx, 500)
    for start in range(0, len(ids), 100):
        lists.change_members(ctx, None, target.id, add=ids[start : start + 100])
    start = clock.now()
    worker.run_until(start + timedelta(minutes=10))  # rules run in the worker's tick
    with ctx.db.read() as session:
        enrolled_day1 = session.scalar(select(func.count()).select_from(Enrollment))
        held = session.get(AutomationRule, rule.id).resume_at
    assert enrolled_day1 == 200 and held is not None
    sent = [m.sent_at for m in _messages(ctx)]
    # 20 s apart, from the first instant to the last of the ten minutes
    assert len(sent) == 31 and spaced_ok(sent, 3) and not spaced_ok(sent, 2)
    for _ in range(3):  # the following days
        clock.set(max(clock.now(), held))
        automation.run_pending(ctx)
        while automation.run_pending(ctx):
            pass
        with ctx.db.read() as session:
            held = session.get(AutomationRule, rule.id).resume_at or held
    with ctx.db.read() as session:
        outcomes = dict(
            session.execute(
                select(AutomationRun.outcome, func.count())
                .where(AutomationRun.rule_id == rule.id)
                .group_by(AutomationRun.outcome)
            ).all()
        )
        per_day = (
            session.execute(
                select(func.count()).select_from(Enrollment).group_by(Enrollment.enrolled_at)
            )
            .scalars()
            .all()
        )
    assert outcomes == {"enrolled": 500}
    assert sorted(per_day) == [100, 200, 200]


def _messages(ctx):
    with ctx.db.read() as session:
        return list(session.scalars(select(Message).order_by(Message.sent_at)))
