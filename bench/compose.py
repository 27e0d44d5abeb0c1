"""CPU per composed email, against a bare sandboxed render of the same templates, in one run.

    .venv/bin/python bench/compose.py [-n 200] [--rounds 15]

Composes the claim path's messages (`composed_columns`: render in the budgeted sandbox,
sanitise, sign the links, text part, MIME) for 200 contacts in memory, no database, and
renders the same subject and body through a bare `ImmutableSandboxedEnvironment`. Two
bodies: the one bench/engine.py sends (static, no tracking) and a personalised one with
tracked links, a condition and the signature. CPU time, the fastest of `--rounds`
batches: on a shared machine the fastest batch is the one least disturbed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from jinja2.sandbox import ImmutableSandboxedEnvironment

from cadenza.domain.tracking import LinkMaker
from cadenza.services.delivery.compose import MessageSources, composed_columns
from cadenza.store.models import Contact, Enrollment, Mailbox, StepRun, User

STATIC = {"subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}
PERSONAL = {
    "subject": "{{ contact.firstname }}, a question about {{ contact.company | default('you') }}",
    "body": "<p>Hi {{ contact.firstname }},</p><p>I saw that {{ contact.company | default('your"
    " team') }} is hiring {{ contact.jobtitle | default('people') }}s. <a href=\"https://example"
    '.com/demo">Book a demo</a> or read <a href="https://example.com/case">our case study</a>.'
    "</p>{% if contact.phone %}<p>I'll call you at {{ contact.phone }}.</p>{% endif %}"
    "<p>Best,</p>{{ sender.signature }}",
}
TRACKED = {"track_opens": True, "track_clicks": True}
CASES = [("static", STATIC, {}), ("personal", PERSONAL, TRACKED)]
CONTACTS = 200


def fastest(work: Callable[[int], None], count: int, rounds: int) -> float:
    """Microseconds of CPU per item in the fastest of `rounds` batches."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work(count)
        best = min(best, time.process_time() - started)
    return 1e6 * best / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="emails per batch")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    user = User(id=1, email="sam@example.com", firstname="Sam", lastname="Rep",
                signature_html="<p>Sam Rep<br>ACME</p>")  # fmt: skip
    mailbox = Mailbox(id=1, from_email="box@example.com", from_name="Sam at ACME")
    sources = MessageSources({}, {}, {}, LinkMaker("https://cadenza.example", b"k" * 32))
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    bare = ImmutableSandboxedEnvironment(autoescape=True)
    print(f"{'body':<10}{'compose µs':>12}{'bare render µs':>16}{'ratio':>8}")
    for name, step, settings in CASES:
        snapshot = [{"type": "email", "position": 1, "task_priority": "none", **step}]
        rows = []
        for i in range(CONTACTS):
            contact = Contact(id=i, email=f"c{i}@corp.example", firstname=f"Ann{i}",
                              lastname="O'Brien", company=f"Corp & {i}", jobtitle="engineer",
                              phone=None if i % 2 else "+1 555", properties={})  # fmt: skip
            enrollment = Enrollment(id=i, contact_id=i, steps_snapshot=snapshot,
                                    settings_snapshot=settings, token_values={})  # fmt: skip
            rows.append((StepRun(id=i, step_position=1, send_ready=False), enrollment, contact))

        def compose(count: int, rows=rows) -> None:
            for k in range(count):
                run, enrollment, contact = rows[k % CONTACTS]
                composed_columns(sources, run, enrollment, contact, user, mailbox, now)

        subject, body = bare.from_string(step["subject"]), bare.from_string(step["body"])

        def render(count: int, subject=subject, body=body) -> None:
            for k in range(count):
                values = {"contact": {"firstname": f"Ann{k}", "company": "Corp"}, "sender": {}}
                subject.render(values)
                body.render(values)

        ours, theirs = fastest(compose, args.n, args.rounds), fastest(render, args.n, args.rounds)
        print(f"{name:<10}{ours:>12.0f}{theirs:>16.0f}{ours / theirs:>8.1f}")


if __name__ == "__main__":
    main()
