"""Issue 11 item 11 on the web pages (over HTTP, both databases): why and until when."""

from __future__ import annotations

from cadenza.services.enrollment import control as enrollment_control
from tests.api.test_pause_reason_api import out_of_office
from tests.conftest import enroll_ids


def test_the_enrollment_pages_say_why_it_is_paused(rep, ctx, world, worker):
    enrollment_id = out_of_office(ctx, world, worker)
    page = rep.client.get(f"/enrollments/{enrollment_id}").text
    assert 'data-pause="out_of_office"' in page
    assert "Paused by an out-of-office reply" in page and "Mon 16 Mar 2026 00:00" in page
    listing = rep.client.get("/enrollments?state=paused").text
    assert 'data-pause="out_of_office"' in listing and "resumes by itself" in listing

    [manual_id] = enroll_ids(world, [world.contact("bob@corp.example")])
    enrollment_control.pause(ctx, manual_id)
    page = rep.client.get(f"/enrollments/{manual_id}").text
    assert 'data-pause="manual"' in page and "until someone resumes it" in page
    assert "on hold until the enrollment is resumed" in page
