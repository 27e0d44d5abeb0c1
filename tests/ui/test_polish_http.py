"""Issue 5's gaps over HTTP: filled step titles, bounced emails shown as bounced,
and bulk results that name the contacts."""

from __future__ import annotations

import re

from cadenza.domain.enums import EventKind
from cadenza.services.signals.effects import Signal, record_signal
from tests.conftest import enroll_ids
from tests.support.signals import send_first_emails


def test_step_titles_are_filled_for_the_contact(rep, ctx, world):
    [enrollment_id] = enroll_ids(world, [world.contact(firstname="Dora")])
    page = rep.client.get(f"/enrollments/{enrollment_id}").text
    titles = re.findall(r'<span class="step-title">([^<]*)</span>', page)
    assert titles == ["Hi Dora", "reply in the thread of step 1", "Call Dora"]
    assert "{{" not in page


def test_a_bounced_email_shows_as_bounced(rep, ctx, world, worker):
    sent = send_first_emails(ctx, world, worker, ["ann", "ben"])
    contact, enrollment_id, message = sent["ann"]
    record_signal(ctx, Signal(EventKind.BOUNCE, dedupe_key="b1", message_pk=message.id))

    page = rep.client.get(f"/enrollments/{enrollment_id}").text
    assert '<li class="step status-bounced">' in page
    assert '<span class="badge">bounced</span>' in page
    fine = rep.client.get(f"/enrollments/{sent['ben'][1]}").text
    assert '<span class="badge">sent</span>' in fine and "status-bounced" not in fine

    record = rep.client.get(f"/contacts/{contact.id}").text
    assert "email · bounced" in record
    outbox = rep.client.get("/outbox").text
    row = re.search(rf'<tr data-message="{message.id}">.*?</tr>', outbox, re.S).group(0)
    assert ">bounced</span>" in row
    assert ">bounced</span>" in rep.client.get(f"/outbox/{message.id}").text


def test_bulk_results_name_the_contacts(rep, ctx, world):
    cy = world.contact("cy@corp.example", firstname="Cy", lastname="Young")
    ids = enroll_ids(world, [cy, world.contact("dee@corp.example", firstname="Dee")])
    missing = max(ids) + 1  # nothing was enrolled after these
    token = rep.csrf("/enrollments")
    answer = rep.client.post(
        "/enrollments",
        data={"csrf_token": token, "action": "pause", "enrollment": [str(ids[0]), str(missing)]},
    )
    assert answer.status_code == 200
    assert (
        f'<a href="/enrollments/{ids[0]}">Cy Young</a> (enrollment {ids[0]}): done' in answer.text
    )
    assert f"Enrollment {missing}: enrollment {missing} does not exist" in answer.text
    again = rep.client.post(
        "/enrollments", data={"csrf_token": token, "action": "pause", "enrollment": ids}
    )
    assert (
        f'<a href="/enrollments/{ids[0]}">Cy Young</a> (enrollment {ids[0]}): '
        f"enrollment {ids[0]} is paused: it cannot be paused"
    ) in again.text
    assert f'<a href="/enrollments/{ids[1]}">Dee</a> (enrollment {ids[1]}): done' in again.text
