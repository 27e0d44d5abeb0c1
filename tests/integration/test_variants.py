"""A/B variants through enrollment and the engine, on both databases: each contact's
variant recorded on its step run and message and sent with that variant's text, a
per-contact override, per-variant analytics, and the winner rule switching new
enrollments only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.domain.variants import assigned_label
from cadenza.services.analytics import results as analytics
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.enrollment.views import get_enrollment
from cadenza.services.sequences import catalog
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Message, StepRun, StepVariantWinner

STEPS = [
    {
        "type": "email",
        "subject": "Hi {{ contact.firstname }}",
        "body": "<p>Hello</p>",
        "variants": [{}, {"subject": "Quick question, {{ contact.firstname }}"}],
    }
]


def sent_messages(ctx) -> dict[int, tuple[str | None, str | None, str]]:
    """Enrollment id -> (run's variant, message's variant, subject)."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(StepRun.enrollment_id, StepRun.variant, Message.variant, Message.subject)
            .join(Message, Message.step_run_id == StepRun.id)
            .where(Message.sent_at.is_not(None))
        )
        return {e: (rv, mv, subject) for e, rv, mv, subject in rows}


def enroll_all(world, contacts, edits=None, **options):
    results = enroll(
        world.ctx,
        EnrollRequest(
            sequence_id=world.sequence.id,
            user_id=world.user.id,
            contacts=[
                ContactRequest(c.id, step_edits=(edits or {}).get(c.id, {})) for c in contacts
            ],
            **options,
        ),
    )
    assert all(r.ok for r in results), results
    return [r.enrollment_id for r in results]


def test_each_contact_gets_one_variant_recorded_and_counted(ctx, world, worker, cli):
    world.sequence = world.make_sequence(steps=STEPS, name="A/B")
    contacts = world.contacts(6)
    pinned, own, drawn = contacts[0], contacts[1], contacts[2:]
    ids = enroll_all(
        world,
        contacts,
        {pinned.id: {"1": {"variant": "B"}}, own.id: {"1": {"subject": "Just for you"}}},
    )
    worker.run_until(ctx.clock.now() + timedelta(hours=1))

    sent = sent_messages(ctx)
    assert set(sent) == set(ids)
    subjects = {"A": "Hi Ann", "B": "Quick question, Ann"}
    for contact, enrollment_id in zip(drawn, ids[2:], strict=True):
        run_variant, message_variant, subject = sent[enrollment_id]
        assert run_variant == assigned_label(["A", "B"], world.sequence.id, contact.id, 1)
        assert message_variant == run_variant and subject == subjects[run_variant]
    assert sent[ids[0]] == ("B", "B", subjects["B"])  # pinned by the contact's edit
    assert sent[ids[1]] == (None, None, "Just for you")  # their own text: no variant
    [line] = get_enrollment(ctx, ids[0], actor_id=world.user.id).steps
    assert line.variant == "B"
    events = analytics.enrollment_timeline(ctx, ids[0], actor_id=world.user.id)
    assert [(e.kind, e.variant) for e in events if e.kind == "sent"] == [("sent", "B")]

    with ctx.db.read() as session:
        message_pk = session.scalar(select(Message.id).where(Message.enrollment_id == ids[0]))
    record_signal(ctx, Signal(EventKind.REPLY, "reply-b", message_pk=message_pk))

    split = analytics.sequence_report(ctx, world.sequence.id).variants[1]
    a, b = split.variants
    assert (a.label, b.label) == ("A", "B") and b.subject == STEPS[0]["variants"][1]["subject"]
    drawn_b = sum(1 for i in ids[2:] if sent[i][0] == "B")
    assert (a.sent, b.sent) == (4 - drawn_b, drawn_b + 1)  # the own-text one is in neither
    assert (a.replied, b.replied) == (0, 1)
    assert b.rates["reply_rate"] == round(1 / b.sent, 4)
    assert b.reply_rate_interval[0] < b.rates["reply_rate"] <= b.reply_rate_interval[1]
    assert split.winner is None
    printed = cli("sequences", "analytics", str(world.sequence.id))
    assert "1A" in printed and "1B" in printed
    test = f"{split.test} p={split.p_value}" if split.p_value is not None else "no test yet"
    assert f"step 1 variants: {test}" in printed


def test_the_winner_takes_new_enrollments_only(ctx, world, worker):
    steps = [{**STEPS[0], "winner_after": 2}]
    world.sequence = world.make_sequence(steps=steps, name="A/B with a winner")
    first_contacts = world.contacts(4, prefix="first")
    pins = {
        c.id: {"1": {"variant": label}} for c, label in zip(first_contacts, "AABB", strict=True)
    }
    first = enroll_all(world, first_contacts, pins)
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    sent = sent_messages(ctx)
    assert [sent[i][0] for i in first] == ["A", "A", "B", "B"]
    with ctx.db.read() as session:
        message_pk = session.scalar(select(Message.id).where(Message.enrollment_id == first[2]))
    ctx.clock.advance(timedelta(minutes=5))
    record_signal(ctx, Signal(EventKind.REPLY, "reply-1", message_pk=message_pk))
    ctx.clock.advance(timedelta(hours=1))

    dry = enroll(world.ctx, EnrollRequest(world.sequence.id, world.user.id,
                                          [ContactRequest(world.contact("dry@corp.example").id)],
                                          dry_run=True))  # fmt: skip
    assert dry[0].ok and _winners(ctx) == []  # a dry run decides nothing for good

    later_contacts = world.contacts(3, prefix="later")
    later = enroll_all(world, later_contacts)
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    sent = sent_messages(ctx)
    assert {sent[i][0] for i in later} == {"B"}  # every new enrollment: the winner
    assert [sent[i][0] for i in first] == ["A", "A", "B", "B"]  # the earlier ones keep theirs
    [(position, label, decided_at, tallies)] = _winners(ctx)
    assert (position, label, decided_at) == (1, "B", ctx.clock.now() - timedelta(hours=1))
    assert tallies == {"A": {"sent": 2, "delivered": 2, "replied": 0},
                       "B": {"sent": 2, "delivered": 2, "replied": 1}}  # fmt: skip
    split = analytics.sequence_report(ctx, world.sequence.id).variants[1]
    assert (split.winner, split.winner_after) == ("B", 2)

    view = world.sequence
    catalog.replace_sequence(ctx, view.id, name="Renamed", settings=None, steps=steps,
                             actor_id=world.user.id)  # fmt: skip
    assert len(_winners(ctx)) == 1  # the same test: the decision stands
    changed = [{**steps[0], "variants": [{}, {"subject": "Another try"}]}]
    catalog.replace_sequence(ctx, view.id, name="Renamed", settings=None, steps=changed,
                             actor_id=world.user.id)  # fmt: skip
    assert _winners(ctx) == []  # a new test starts undecided


def _per_label(sent, ids) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in ids:
        counts[sent[i][0]] = counts.get(sent[i][0], 0) + 1
    return counts


def _winners(ctx):
    with ctx.db.read() as session:
        return [
            (w.step_position, w.label, w.decided_at, w.tallies)
            for w in session.scalars(select(StepVariantWinner))
        ]
