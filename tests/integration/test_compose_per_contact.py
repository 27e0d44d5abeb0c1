"""Composing reuses what it can across the emails of a claim round (the sanitiser, the
text of a body, header lines), so the emails of one round must still each carry exactly
their own contact's, step's and variant's content, and their own links, on both
databases."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_string
from email.policy import default as default_policy
from html import escape

from sqlalchemy import select

from cadenza.domain.tracking import FOOTER
from cadenza.services.delivery import claims
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Message

LINK = "https://example.com/question"
A_B = [
    {
        "type": "email",
        "subject": "Hi {{ contact.firstname }}",
        "body": "<p>Hello {{ contact.firstname }} at "
        "{{ contact.company | default('your team') }}</p>",
        "variants": [
            {},
            {
                "subject": "Quick question, {{ contact.firstname }}",
                "body": "<p>A question for {{ contact.firstname }}: "
                f'<a href="{LINK}">see</a></p>',
            },
        ],
    }
]
SAME_FOR_ALL = [{"type": "email", "subject": "News", "body": "<p>The same for everyone</p>"}]
SETTINGS = {
    "follow_up_days": "every_day",
    "track_opens": True,
    "track_clicks": True,
    "enrollment_rules": {"exclusivity": "none"},  # the two contacts are in all three
}
QUESTION = f'<a href="{LINK}" rel="noopener noreferrer">see</a>'
# (contact, variant) -> subject, untracked HTML before the footer, text before the footer
EXPECTED = {
    ("Ann", "A"): ("Hi Ann", "<p>Hello Ann at Corp &amp; Co</p>", "Hello Ann at Corp & Co"),
    ("Bob", "A"): ("Hi Bob", "<p>Hello Bob at your team</p>", "Hello Bob at your team"),
    ("Ann", "B"): (
        "Quick question, Ann",
        f"<p>A question for Ann: {QUESTION}</p>",
        f"A question for Ann: see ({LINK})",
    ),
    ("Bob", "B"): (
        "Quick question, Bob",
        f"<p>A question for Bob: {QUESTION}</p>",
        f"A question for Bob: see ({LINK})",
    ),
    ("Ann", None): ("News", "<p>The same for everyone</p>", "The same for everyone"),
    ("Bob", None): ("News", "<p>The same for everyone</p>", "The same for everyone"),
}


def enroll_pinned(world, sequence, pins) -> list[int]:
    """Each contact enrolled with the variant chosen for it (None: the step has none)."""
    results = enroll(
        world.ctx,
        EnrollRequest(
            sequence_id=sequence.id,
            user_id=world.user.id,
            contacts=[
                ContactRequest(c.id, step_edits={"1": {"variant": v}} if v else {}) for c, v in pins
            ],
        ),
    )
    assert all(r.ok for r in results), results
    return [r.enrollment_id for r in results]


def parts(raw: str) -> tuple[str, str, str]:
    """The List-Unsubscribe URL, the text part and the HTML part, as a client reads them."""
    message = message_from_string(raw.replace("\r\n", "\n"), policy=default_policy)
    text = message.get_body(("plain",)).get_content().rstrip("\n")
    html = message.get_body(("html",)).get_content().rstrip("\n")
    return message["List-Unsubscribe"].strip("<>"), text, html


def test_one_claim_round_gives_each_contact_step_and_variant_its_own_content(ctx, world):
    ann = world.contact("ann@corp.example", firstname="Ann", company="Corp & Co")
    bob = world.contact("bob@corp.example", firstname="Bob")
    first = world.make_sequence(steps=A_B, settings=SETTINGS, name="A/B")
    second = world.make_sequence(steps=A_B, settings=SETTINGS, name="A/B again")
    same = world.make_sequence(steps=SAME_FOR_ALL, settings=SETTINGS, name="Same")
    wanted = {}
    for sequence, pins in (
        (first, [(ann, "A"), (bob, "B")]),
        (second, [(ann, "B"), (bob, "A")]),  # each contact gets both variants
        (same, [(ann, None), (bob, None)]),
    ):
        for enrollment_id, (contact, variant) in zip(
            enroll_pinned(world, sequence, pins), pins, strict=True
        ):
            wanted[enrollment_id] = (contact.firstname, variant)

    made = claims.claim_emails(
        ctx, [world.mailbox.id], "w", batch_size=100, horizon=timedelta(hours=1),
        lease=timedelta(minutes=5),
    )  # fmt: skip
    assert len(made) == 6  # all six composed in the one round

    with ctx.db.read() as session:
        messages = list(session.scalars(select(Message)))
    assert {m.enrollment_id for m in messages} == set(wanted)
    urls = set()
    for message in messages:
        who, variant = wanted[message.enrollment_id]
        subject, html, text = EXPECTED[(who, variant)]
        url, text_part, html_part = parts(message.raw)
        assert message.tracking_id in url
        urls.add(url)
        assert message.to_email == f"{who.lower()}@corp.example"
        assert message.variant == variant
        assert message.subject == subject
        assert message.body_html == html + FOOTER.format(url=escape(url))
        assert message.body_text == f"{text}\n\nNot interested? Unsubscribe ({url})."
        assert text_part == message.body_text
        assert f"/o/{message.tracking_id}." in html_part  # its own open pixel
        if variant == "B":  # its own click link, to its contact's target
            assert message.links == [LINK]
            assert f"/c/{message.tracking_id}.0." in html_part and LINK not in html_part
        else:
            assert message.links is None
    assert len(urls) == 6  # every email its own unsubscribe link
