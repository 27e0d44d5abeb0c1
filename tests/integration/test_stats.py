"""Sequence statistics after a real worker run, on both databases: every number exact."""

from datetime import timedelta

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.analytics.stats import SequenceStats, StepStats, sequence_stats
from cadenza.services.crm.contacts import update_contact
from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.tasks import complete_task, list_tasks
from cadenza.services.sequences.catalog import archive_sequence, replace_sequence
from tests.conftest import EMAIL_STEPS, MISSING_ID, enroll_ids


def leave_one_send_unknown(ctx, world, contact):
    """A worker that dies after committing the hand-over: the outcome stays unknown."""
    [eid] = enroll_ids(world, [contact])
    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    [claim] = claims.claim_emails(
        ctx, mailbox_id, "dead", batch_size=10, horizon=timedelta(0), lease=timedelta(minutes=1)
    )
    assert delivery.hand_over(ctx, claim, "dead") == "go"
    return eid


def test_counts_states_reasons_sends_and_tasks_per_step(ctx, world, worker):
    start = ctx.clock.now()
    unknown, failing, left, paused, done, waiting, elsewhere = (
        world.contact(f"{name}@corp.example")
        for name in ("unknown", "failing", "left", "paused", "done", "waiting", "elsewhere")
    )
    leave_one_send_unknown(ctx, world, unknown)
    ids = dict(
        zip(
            ("failing", "left", "paused", "done", "waiting"),
            enroll_ids(world, [failing, left, paused, done, waiting]),
            strict=True,
        )
    )
    update_contact(ctx, failing.id, {"firstname": ""})  # its first email cannot render
    other_sequence = world.make_sequence(name="Other")
    enroll_ids(world, [elsewhere], other_sequence)  # counted for the other sequence only

    worker.run_until(start + timedelta(days=1))
    enrollment_control.unenroll(ctx, ids["left"], "manual")
    enrollment_control.pause(ctx, ids["paused"])
    # step 2 on Thursday, the call task (Sunday -> Monday 9 March) for done and waiting
    worker.run_until(start + timedelta(days=7, hours=2))
    tasks = {t.contact_id: t for t in list_tasks(ctx)}
    assert set(tasks) == {done.id, waiting.id, elsewhere.id}
    complete_task(ctx, tasks[done.id].id)  # the last step: that enrollment finishes

    assert sequence_stats(ctx, world.sequence.id) == SequenceStats(
        sequence_id=world.sequence.id,
        enrolled=6,
        active=2,  # waiting (its task is open) and unknown (held for review)
        paused=1,
        finished=1,
        unenrolled=2,
        unenrolled_by_reason={"manual": 1, "send_failed": 1},
        sent=6,
        failed=1,
        unknown=1,
        steps=[
            StepStats(1, "email", sent=4, failed=1, unknown=1),
            StepStats(2, "email", sent=2),
            StepStats(3, "task", tasks_completed=1, tasks_open=1),
        ],
    )
    other = sequence_stats(ctx, other_sequence.id)
    assert (other.enrolled, other.active, other.sent, other.unenrolled_by_reason) == (1, 1, 2, {})
    assert [(s.sent, s.tasks_open) for s in other.steps] == [(1, 0), (1, 0), (0, 1)]


def test_a_sequence_without_enrollments_counts_zero_for_each_step(ctx, world):
    assert sequence_stats(ctx, world.sequence.id) == SequenceStats(
        sequence_id=world.sequence.id,
        enrolled=0,
        active=0,
        paused=0,
        finished=0,
        unenrolled=0,
        unenrolled_by_reason={},
        sent=0,
        failed=0,
        unknown=0,
        steps=[StepStats(1, "email"), StepStats(2, "email"), StepStats(3, "task")],
    )


def test_steps_removed_later_still_count_from_the_runs(ctx, world, worker):
    enroll_ids(world, world.contacts(2))
    worker.run_until(ctx.clock.now() + timedelta(days=4))
    replace_sequence(ctx, world.sequence.id, name="Short", settings=None, steps=EMAIL_STEPS[:1])
    found = sequence_stats(ctx, world.sequence.id)
    # enrollments run from their snapshots: step 2 is gone from the sequence, not from them
    assert [(s.position, s.type, s.sent) for s in found.steps] == [
        (1, "email", 2),
        (2, "email", 2),
        (3, "task", 0),  # its run waits for Monday: the type comes from the run
    ]
    assert (found.sent, found.active) == (4, 2)


def test_an_unknown_sequence_has_no_stats_an_archived_one_keeps_them(ctx, world):
    with pytest.raises(CadenzaError) as caught:
        sequence_stats(ctx, MISSING_ID)
    assert caught.value.code == "sequence_not_found"
    archive_sequence(ctx, world.sequence.id)
    assert sequence_stats(ctx, world.sequence.id).enrolled == 0
