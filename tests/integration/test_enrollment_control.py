"""Pause, resume, unenroll and the projected timeline, on both databases."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.errors import CadenzaError
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.enrollment.views import get_enrollment, list_enrollments
from cadenza.store.models import Enrollment, StepRun, Task
from tests.conftest import MISSING_ID


def enrolled(ctx, world, **options):
    contact = world.contact(timezone="Europe/Berlin")
    [result] = enroll(
        ctx,
        EnrollRequest(
            sequence_id=world.sequence.id,
            user_id=world.user.id,
            contacts=[ContactRequest(contact.id)],
            **options,
        ),
    )
    assert result.ok, result
    return result.enrollment_id


def run_of(ctx, enrollment_id) -> StepRun:
    with ctx.db.transaction() as session:
        return session.scalars(select(StepRun).where(StepRun.enrollment_id == enrollment_id)).one()


def test_view_projects_every_remaining_step_with_the_schedule_function(ctx, world):
    enrollment_id = enrolled(ctx, world)
    view = get_enrollment(ctx, enrollment_id)
    assert [(s.position, s.status) for s in view.steps] == [
        (1, "pending"),
        (2, "projected"),
        (3, "projected"),
    ]
    assert view.steps[1].due_at == ctx.clock.now() + timedelta(days=3)
    # Sunday 10:00 Berlin moves to Monday with weekdays-only follow-ups
    assert view.steps[2].due_at.isoformat() == "2026-03-09T09:00:00+00:00"


def test_projection_continues_from_an_actual_completion(ctx, world):
    enrollment_id = enrolled(ctx, world)
    with ctx.db.transaction() as session:
        run = session.scalars(select(StepRun)).one()
        run.status = "sent"
        run.completed_at = ctx.clock.now() + timedelta(hours=5)
    view = get_enrollment(ctx, enrollment_id)
    assert view.steps[0].status == "sent"
    assert view.steps[1].due_at == ctx.clock.now() + timedelta(days=3, hours=5)


def test_pause_keeps_the_remaining_wait_and_resume_restores_it(ctx, world):
    start = ctx.clock.now()
    send_at = start + timedelta(hours=2)
    enrollment_id = enrolled(ctx, world, send_at=send_at)
    ctx.clock.advance(timedelta(hours=1))
    enrollment_control.pause(ctx, enrollment_id)
    assert run_of(ctx, enrollment_id).status == "paused"
    view = get_enrollment(ctx, enrollment_id)
    assert view.enrollment.state == "paused"
    ctx.clock.advance(timedelta(days=2))
    enrollment_control.resume(ctx, enrollment_id)
    run = run_of(ctx, enrollment_id)
    assert run.status == "pending"
    # one hour was left when paused; step 1 is not subject to follow-up rules
    assert run.due_at == ctx.clock.now() + timedelta(hours=1)


def test_resumed_follow_up_obeys_days_and_window(ctx, world):
    world.sequence = world.make_sequence(
        settings={"follow_up_days": "weekdays", "send_window": {"start": "08:00", "end": "18:00"}},
        name="Windowed",
    )
    enrollment_id = enrolled(ctx, world)
    with ctx.db.transaction() as session:
        first = session.scalars(select(StepRun)).one()
        first.status, first.completed_at = "sent", ctx.clock.now()
        session.add(
            StepRun(
                enrollment_id=enrollment_id,
                mailbox_id=world.mailbox.id,
                step_position=2,
                step_type="email",
                status="pending",
                due_at=ctx.clock.now() + timedelta(days=3),
                created_at=ctx.clock.now(),
            )
        )
    enrollment_control.pause(ctx, enrollment_id)
    # resume Thursday 18:30 Berlin with 3 days left: Sunday 18:30 -> Monday (weekdays)
    # -> after the window -> Tuesday 08:00 Berlin
    ctx.clock.set(ctx.clock.now().replace(day=5, hour=17, minute=30))
    enrollment_control.resume(ctx, enrollment_id)
    with ctx.db.transaction() as session:
        second = session.scalars(select(StepRun).where(StepRun.step_position == 2)).one()
    assert second.due_at.isoformat() == "2026-03-10T07:00:00+00:00"


def test_unenroll_cancels_pending_steps_and_open_tasks_with_reason(ctx, world):
    enrollment_id = enrolled(ctx, world)
    with ctx.db.transaction() as session:
        session.add(
            Task(
                owner_id=world.user.id,
                enrollment_id=enrollment_id,
                type="call",
                title="Call",
                due_at=ctx.clock.now(),
                created_at=ctx.clock.now(),
            )
        )
    enrollment_control.unenroll(ctx, enrollment_id, "replied", detail="message 42")
    with ctx.db.transaction() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert (enrollment.state, enrollment.reason, enrollment.reason_detail) == (
            "unenrolled",
            "replied",
            "message 42",
        )
        assert enrollment.ended_at == ctx.clock.now()
        assert session.scalars(select(Task.status)).one() == "cancelled"
    assert run_of(ctx, enrollment_id).status == "cancelled"
    assert [s.status for s in get_enrollment(ctx, enrollment_id).steps] == ["cancelled"]


@pytest.mark.parametrize(
    ("action", "code"),
    [(enrollment_control.resume, "invalid_state"), (enrollment_control.unenroll, "invalid_state")],
)
def test_actions_in_the_wrong_state_are_refused(ctx, world, action, code):
    enrollment_id = enrolled(ctx, world)
    if action is enrollment_control.unenroll:
        enrollment_control.unenroll(ctx, enrollment_id)
    with pytest.raises(CadenzaError) as caught:
        action(ctx, enrollment_id)
    assert caught.value.code == code


def test_unknown_enrollment_and_reason(ctx, world):
    with pytest.raises(CadenzaError) as caught:
        enrollment_control.pause(ctx, MISSING_ID)
    assert caught.value.code == "enrollment_not_found"
    enrollment_id = enrolled(ctx, world)
    with pytest.raises(CadenzaError) as caught:
        enrollment_control.unenroll(ctx, enrollment_id, "bored")
    assert caught.value.code == "validation_error"
    assert get_enrollment(ctx, enrollment_id).enrollment.state == "active"


def test_bulk_actions_report_each_enrollment(ctx, world):
    first = enrolled(ctx, world)
    outcomes = enrollment_control.for_many(enrollment_control.pause, ctx, [first, 777])
    assert [(o.enrollment_id, o.ok, o.code) for o in outcomes] == [
        (first, True, None),
        (777, False, "enrollment_not_found"),
    ]


def test_list_filters(ctx, world):
    first = enrolled(ctx, world)
    enrollment_control.pause(ctx, first)
    assert [e.id for e in list_enrollments(ctx, state="paused")] == [first]
    assert list_enrollments(ctx, state="active") == []
    assert [e.id for e in list_enrollments(ctx, sequence_id=world.sequence.id)] == [first]
    with pytest.raises(CadenzaError):
        list_enrollments(ctx, state="sleeping")
