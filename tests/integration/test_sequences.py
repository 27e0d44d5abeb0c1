"""Sequences are validated when saved: steps, settings and templates."""

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.sequences import catalog as sequences
from tests.conftest import backend_independent

UNSAFE_BODY = '<p onclick="x()">Hi <a href="javascript:alert(1)">x</a></p><script>bad()</script>'
EMAIL = {"type": "email", "subject": "s", "body": "b"}


def save(ctx, world, steps, settings=None):
    return sequences.create_sequence(ctx, world.user.id, "S", settings=settings, steps=steps)


def refused(ctx, world, steps, settings=None):
    before = len(sequences.list_sequences(ctx))
    with pytest.raises(CadenzaError) as caught:
        save(ctx, world, steps, settings)
    assert len(sequences.list_sequences(ctx)) == before
    return caught.value


def test_steps_are_stored_in_order_with_sanitised_html(ctx, world):
    sequence = save(
        ctx,
        world,
        [
            {"type": "email", "subject": "Hi", "body": UNSAFE_BODY},
            {"type": "task", "delay_days": 2, "task_type": "linkedin", "task_title": "Connect",
             "continue_without_completing": True},
            {"type": "manual_email", "delay_days": 1, "thread_with_step": 1, "body": "<p>Re</p>"},
        ],
        {"follow_up_days": "business_days", "holiday_country": "de", "send_window": "08:00-17:30"},
    )  # fmt: skip
    stored = sequences.get_sequence(ctx, sequence.id)
    assert [(s.position, s.type) for s in stored.steps] == [
        (1, "email"),
        (2, "task"),
        (3, "manual_email"),
    ]
    body = stored.steps[0].body
    assert "onclick" not in body and "javascript" not in body and "script" not in body
    assert stored.steps[1].continue_without_completing and stored.steps[1].task_type == "linkedin"
    assert stored.settings["holiday_country"] == "DE"
    assert stored.settings["send_window"] == {"start": "08:00", "end": "17:30"}


@backend_independent
@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ([{"type": "fax"}], "type must be one of"),
        ([{"type": "email", "subject": "s"}], "needs a body"),
        ([{"type": "email", "body": "b"}], "needs a subject"),
        ([{"type": "email", "subject": "s", "body": "b", "delay_days": -1}], "delay_days"),
        ([{"type": "email", "subject": "s", "body": "b", "delay_hours": 24}], "delay_hours"),
        ([{**EMAIL, "thread_with_step": 1}], "thread_with_step"),
        ([{"type": "task"}, {**EMAIL, "subject": None, "thread_with_step": 1}], "thread_with_step"),
        ([{"type": "email", "subject": "s", "body": "b", "colour": "red"}], "unknown field"),
        ([{"type": "task", "task_type": "fax"}], "task_type"),
    ],
)  # fmt: skip
def test_bad_steps_are_refused_with_the_step_named(ctx, world, steps, fragment):
    error = refused(ctx, world, steps)
    assert error.code == "validation_error"
    assert fragment in error.message and "step" in error.message


def test_unsafe_template_is_refused_with_its_line(ctx, world):
    body = "<p>Hi</p>\n<p>there</p>\n{{ ''.__class__.__mro__ }}"
    error = refused(ctx, world, [{"type": "email", "subject": "s", "body": body}])
    assert error.code == "unsafe_template"
    assert error.details["line"] == 3 and error.details["step"] == 1


def test_template_syntax_error_is_refused_with_its_line(ctx, world):
    error = refused(
        ctx, world, [{"type": "email", "subject": "Hi {{ contact.firstname ", "body": "b"}]
    )
    assert error.code == "invalid_template" and error.details["line"] == 1


@backend_independent
@pytest.mark.parametrize(
    "settings",
    [
        {"follow_up_days": "sometimes"},
        {"follow_up_days": "business_days"},
        {"follow_up_days": "business_days", "holiday_country": "XX"},
        {"send_window": {"start": "18:00", "end": "08:00"}},
        {"send_window": "9am-5pm"},
        {"colour": "red"},
        {"auto_reply_pause_days": 0},
        {"auto_reply_pause_days": 91},
        {"auto_reply_pause_days": "7"},
        {"auto_reply_pause_days": True},
    ],
)
def test_bad_settings_are_refused(ctx, world, settings):
    error = refused(ctx, world, [{"type": "task", "task_title": "t"}], settings)
    assert error.code == "validation_error"


def test_archive_takes_the_sequence_off_the_list_but_keeps_it_readable(ctx, world):
    sequences.archive_sequence(ctx, world.sequence.id)
    assert sequences.get_sequence(ctx, world.sequence.id).archived_at == ctx.clock.now()
    assert world.sequence.id not in [s.id for s in sequences.list_sequences(ctx)]
    assert [s.id for s in sequences.list_sequences(ctx, archived=True)] == [world.sequence.id]
    with pytest.raises(CadenzaError) as caught:
        sequences.get_sequence(ctx, world.sequence.id, to_change=True)
    assert caught.value.code == "sequence_archived"
    sequences.unarchive_sequence(ctx, world.sequence.id)
    assert sequences.get_sequence(ctx, world.sequence.id, to_change=True).archived_at is None
    assert sequences.list_sequences(ctx, archived=True) == []
