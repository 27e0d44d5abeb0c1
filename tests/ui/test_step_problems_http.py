"""Issue 11 item 2: a failed or unknown step is explained plainly (which step, what the
server said, when) on the enrollment page, in the API and the CLI; on both databases,
against a real SMTP server on loopback."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import enroll_ids
from tests.integration import test_engine_smtp

# The real SMTP server on loopback and a world sending through it, as the engine tests use.
sink = test_engine_smtp.sink
smtp_world = test_engine_smtp.smtp_world


def test_a_server_error_is_shown_with_the_step_the_reply_and_the_time(
    api,
    rep,
    ctx,
    smtp_world,
    sink,
    worker,
):
    # Refused for this message (a refusal of the mailbox itself would pause the mailbox
    # instead: test_circuit_breaker.py).
    sink.fail_next("RCPT", "554 5.3.0 message refused: <b>no route</b>")
    [enrollment_id] = enroll_ids(smtp_world, [smtp_world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))

    body = api.get(f"/enrollments/{enrollment_id}").json()
    assert (body["state"], body["reason"]) == ("unenrolled", "send_failed")
    [problem] = body["problems"]
    assert (problem["position"], problem["status"], problem["attempts"]) == (1, "failed", 1)
    assert problem["server_reply"] == "554 5.3.0 message refused: <b>no route</b>"
    assert "refused this email permanently (code 554)" in problem["explanation"]
    assert "enrollment ended" in problem["explanation"]
    assert problem["at"].startswith("2026-03-02")
    assert problem["title"] == "Hi Ann"

    page = rep.client.get(f"/enrollments/{enrollment_id}").text
    assert 'id="step-problems"' in page and "What went wrong" in page
    assert "Step 1 · email · Hi Ann" in page and "failed, Mon 02 Mar 2026" in page
    # The server's words are shown as text, never as markup.
    assert "message refused: &lt;b&gt;no route&lt;/b&gt;" in page


def test_an_unknown_outcome_says_it_is_not_resent_and_what_to_check(
    api,
    rep,
    ctx,
    smtp_world,
    sink,
    worker,
):
    sink.drop_next("DATA")
    [enrollment_id] = enroll_ids(smtp_world, [smtp_world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    [problem] = api.get(f"/enrollments/{enrollment_id}").json()["problems"]
    assert problem["status"] == "unknown"
    assert "never resent automatically" in problem["explanation"]
    assert "Sent folder" in problem["explanation"]
    page = rep.client.get(f"/enrollments/{enrollment_id}").text
    assert "outcome unknown" in page and "never resent automatically" in page


def test_a_healthy_enrollment_has_no_problems(api, rep, world):
    [enrollment_id] = enroll_ids(world, [world.contact()])
    assert api.get(f"/enrollments/{enrollment_id}").json()["problems"] == []
    assert 'id="step-problems"' not in rep.client.get(f"/enrollments/{enrollment_id}").text
