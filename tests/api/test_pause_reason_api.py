"""Issue 11 item 11: a paused enrollment says why and when it resumes, in the API, the web
pages and the CLI, and never shows a next-step date that will not happen; both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from cadenza.domain.enums import EventKind
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.signals.effects import Signal, record_signal
from tests.conftest import enroll_ids
from tests.support.signals import send_first_emails

TWO_EMAILS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 2, "thread_with_step": 1, "body": "<p>Bump</p>"},
    {"type": "email", "delay_days": 3, "subject": "Last", "body": "<p>Bye</p>"},
]
BACK = date(2026, 3, 16)  # the out-of-office text's return date: two weeks on


def out_of_office(ctx, world, worker):
    sequence = world.make_sequence(steps=TWO_EMAILS, settings={"follow_up_days": "every_day"})
    [(_, enrollment_id, first)] = send_first_emails(
        ctx, world, worker, ["ann"], sequence=sequence
    ).values()
    auto = Signal(EventKind.AUTO_REPLY, "ooo-1", message_pk=first.id, return_date=BACK)
    assert record_signal(ctx, auto).paused == [enrollment_id]
    return enrollment_id


def test_an_out_of_office_pause_says_why_and_when_it_resumes(api, ctx, world, worker):
    enrollment_id = out_of_office(ctx, world, worker)
    body = api.get(f"/enrollments/{enrollment_id}").json()
    assert body["state"] == "paused" and body["pause_reason"] == "out_of_office"
    resume_at = datetime.fromisoformat(body["resume_at"])
    # Midnight of the return day in the contact's zone (the world's default zone).
    assert resume_at.date() == BACK and (resume_at.hour, resume_at.minute) == (0, 0)
    step2, step3 = body["steps"][1], body["steps"][2]
    # Not the date it was due before the pause (2 days after step 1) but after the return.
    assert step2["status"] == "paused"
    assert datetime.fromisoformat(step2["due_at"]) >= resume_at
    assert datetime.fromisoformat(step3["due_at"]) >= datetime.fromisoformat(
        step2["due_at"]
    ) + timedelta(days=3)
    listed = api.get("/enrollments", params={"state": "paused"}).json()["results"]
    assert [(e["id"], e["pause_reason"]) for e in listed] == [(enrollment_id, "out_of_office")]

    # Resuming by hand makes it an ordinary active enrollment again.
    enrollment_control.resume(ctx, enrollment_id)
    body = api.get(f"/enrollments/{enrollment_id}").json()
    assert (body["pause_reason"], body["resume_at"], body["paused_at"]) == (None, None, None)


def test_a_pause_by_a_person_shows_no_date_that_will_not_happen(api, ctx, world):
    [enrollment_id] = enroll_ids(world, [world.contact()])
    enrollment_control.pause(ctx, enrollment_id)
    body = api.get(f"/enrollments/{enrollment_id}").json()
    assert body["pause_reason"] == "manual" and body["resume_at"] is None
    assert body["paused_at"] is not None
    [step1] = [s for s in body["steps"] if s["position"] == 1]
    assert step1["status"] == "paused" and step1["due_at"] is None
    later = [s for s in body["steps"] if s["position"] > 1]
    assert [s["status"] for s in later] == ["projected", "projected"]  # still to come...
    assert all(s["due_at"] is None for s in later)  # ...at dates no one knows yet
