"""Issue 11 item 12: the one-line headline of a step is text, never template code."""

from __future__ import annotations

import pytest

from cadenza.domain.personalization import build_context
from cadenza.domain.steps import parse_steps
from cadenza.services.sequences.preview import SAMPLE_CONTACT, readable, step_headlines

STEPS = parse_steps([
    {"type": "email", "subject": "Your {{ contact.company | default('team') }} trial",
     "body": "<p>x</p>"},
    {"type": "email", "delay_days": 1, "thread_with_step": 1, "body": "<p>bump</p>"},
    {"type": "email", "delay_days": 1, "thread_with_step": 1, "subject": "New angle",
     "body": "<p>y</p>"},
    {"type": "task", "delay_days": 1, "task_type": "call",
     "task_title": "Call {{ contact.firstname }} about {{ contact.project }}"},
    {"type": "task", "delay_days": 1, "task_type": "linkedin"},
])  # fmt: skip
CONTEXT = build_context({"firstname": "Ann", "company": "Globex"}, {"firstname": "Riley"}, {})


def test_headlines_are_filled_and_threaded_steps_keep_their_re():
    assert step_headlines(STEPS, CONTEXT) == {
        1: "Your Globex trial",
        2: "Re: Your Globex trial",
        3: "Re: Your Globex trial",  # threaded: the engine sends "Re:" its thread's subject
        4: "Call Ann about ‹contact.project›",  # no value: a readable placeholder
        5: "linkedin",
    }


def test_without_threading_a_step_keeps_its_own_subject():
    headlines = step_headlines(STEPS, CONTEXT, thread_follow_ups=False)
    assert headlines[3] == "New angle" and headlines[2] == "Re: Your Globex trial"


def test_sample_data_fills_a_sequence_shown_without_a_contact():
    headlines = step_headlines(STEPS, build_context(SAMPLE_CONTACT, {}, {}))
    assert headlines[1] == "Your Example Co trial"
    assert all("{{" not in h and "{%" not in h for h in headlines.values())


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("Hi {{ contact.firstname }}", "Hi ‹contact.firstname›"),
        ("{% if contact.company %}At {{ contact.company }}{% endif %}", "At ‹contact.company›"),
        ("{{ 'x' ~ contact.firstname }} {# note #}", "‹…›"),
        ("Plain", "Plain"),
    ],
)
def test_readable_never_shows_template_code(source, shown):
    assert readable(source) == shown


def test_a_draft_threading_forward_or_onto_itself_is_not_followed():
    from cadenza.domain.steps import parse_step

    drafts = [
        parse_step({"type": "email", "subject": "One", "body": "<p>x</p>",
                    "thread_with_step": 2}, 1),
        parse_step({"type": "email", "subject": "Two", "body": "<p>y</p>",
                    "thread_with_step": 2}, 2),
    ]  # fmt: skip
    assert step_headlines(drafts, CONTEXT) == {1: "One", 2: "Two"}
