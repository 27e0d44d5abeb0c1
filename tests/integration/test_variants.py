"""A/B variants through enrollment and the engine, on both databases: each contact's
variant recorded on its step run and message and sent with that variant's text, a
per-contact override, per-variant analytics, and the winner rule switching new
enrollments only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cadenza.domain.enums import EventKind
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


def test_each_contact_gets_one_variant_recorded_and_counted(ctx, world, worker):
    world.sequence = world.make_sequence(steps=STEPS, name="A/B")
    contacts = world.contacts(12)
    pinned, own = contacts[0], contacts[1]
    ids = enroll_all(
        world,
        contacts,
        {pinned.id: {"1": {"variant": "B"}}, own.id: {"1": {"subject": "Just for you"}}},
    )
    worker.run_until(ctx.clock.now() + timedelta(hours=1))

    sent = sent_messages(ctx)
    assert set(sent) == set(ids)
    subjects = {"A": "Hi Ann", "B": "Quick question, Ann"}
    for enrollment_id in ids[2:]:
        run_variant, message_variant, subject = sent[enrollment_id]
        assert run_variant == message_variant and subject == subjects[run_variant]
    assert {sent[i][0] for i in ids[2:]} == {"A", "B"}  # ten contacts: both drawn
    assert sent[ids[0]] == ("B", "B", subjects["B"])  # pinned by the contact's edit
    assert sent[ids[1]] == (None, None, "Just for you")  # their own text: no variant
    [line] = get_enrollment(ctx, ids[0], actor_id=world.user.id).steps
    assert line.variant == "B"
    events = analytics.enrollment_timeline(ctx, ids[0], actor_id=world.user.id)
    assert [(e.kind, e.variant) for e in events if e.kind == "sent"] == [("sent", "B")]

    with ctx.db.read() as session:
        by_enrollment = {m.enrollment_id: m for m in session.scalars(select(Message))}
    b_ids = [i for i in ids[2:] if sent[i][0] == "B"]
    record_signal(ctx, Signal(EventKind.REPLY, "reply-b", message_pk=by_enrollment[b_ids[0]].id))

    split = analytics.sequence_report(ctx, world.sequence.id).variants[1]
    a, b = split.variants
    assert (a.label, b.label) == ("A", "B") and b.subject == STEPS[0]["variants"][1]["subject"]
    assert a.sent + b.sent == 11 and b.sent == len(b_ids) + 1  # the override is in no variant
    assert (a.replied, b.replied) == (0, 1)
    assert b.rates["reply_rate"] == round(1 / b.sent, 4)
    assert b.reply_rate_interval[0] < b.rates["reply_rate"] < b.reply_rate_interval[1]
    assert split.test == "fisher" and 0 < split.p_value <= 1
    assert split.winner is None


def test_the_winner_takes_new_enrollments_only(ctx, world, worker):
    steps = [{**STEPS[0], "winner_after": 2}]
    world.sequence = world.make_sequence(steps=steps, name="A/B with a winner")
    first = enroll_all(world, world.contacts(8, prefix="first"))
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    sent = sent_messages(ctx)
    assert all(n >= 2 for n in _per_label(sent, first).values())  # both past the threshold
    with ctx.db.read() as session:
        by_enrollment = {m.enrollment_id: m for m in session.scalars(select(Message))}
    replier = next(i for i in first if sent[i][0] == "B")
    record_signal(ctx, Signal(EventKind.REPLY, "reply-1", message_pk=by_enrollment[replier].id))
    ctx.clock.advance(timedelta(hours=1))

    dry = enroll_all(world, world.contacts(2, prefix="dry"), dry_run=True)
    assert dry == [None, None]
    assert _winners(ctx) == []  # a dry run decides nothing for good

    later = enroll_all(world, world.contacts(6, prefix="later"))
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    sent = sent_messages(ctx)
    assert {sent[i][0] for i in later} == {"B"}  # every new enrollment: the winner
    assert _per_label(sent, first)["A"] >= 2  # those enrolled before keep their variant
    [(position, label, decided_at, tallies)] = _winners(ctx)
    assert (position, label, decided_at) == (1, "B", ctx.clock.now() - timedelta(hours=1))
    assert tallies["B"]["replied"] == 1 and tallies["A"]["replied"] == 0
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
