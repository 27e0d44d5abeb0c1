"""A step that failed on a template limit shows as failed, with the template_limit reason,
on the enrollment's page in the web app (over HTTP, both databases)."""

from __future__ import annotations

from html import unescape

from tests.conftest import enroll_ids

NESTED_SUBJECT = (
    "Hi {% for a in contact.company %}{% for b in contact.company %}{% endfor %}{% endfor %}"
)


def test_the_enrollment_page_shows_the_failed_step_and_its_reason(rep, world, worker):
    sequence = world.make_sequence(
        steps=[{"type": "email", "subject": NESTED_SUBJECT, "body": "<p>Hello</p>"}]
    )
    [eid] = enroll_ids(world, [world.contact(company="Q" * 200)], sequence)
    worker.tick()
    page = rep.client.get(f"/enrollments/{eid}")
    assert page.status_code == 200
    text = unescape(page.text)
    assert "could not render (template_limit): Template limit reached" in text
    assert "loops would run more than 10000 times in all" in text
