"""Turning a claimed step run into the exact email that will go out.

Rendering happens once, when the step is claimed; the bytes and the Message-ID are
stored before anything is handed to a server, so a retry sends the very same message
and a crash can always be recognised afterwards.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain import templates, tracking
from cadenza.domain.dkim import DkimSigner, domain_of
from cadenza.domain.enums import MessageStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.link_tokens import new_tracking_id
from cadenza.domain.message import (
    OutgoingEmail,
    build_mime,
    html_to_text,
    new_message_id,
    reply_subject,
)
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.domain.tracking import LinkMaker
from cadenza.services.accounts.dkim import signers
from cadenza.services.accounts.link_secret import link_maker
from cadenza.services.context import Context
from cadenza.services.sequences.personalization import (
    render_step,
)
from cadenza.store.models import Contact, Enrollment, Mailbox, Message, StepRun, Task, User


@dataclass
class MessageSources:
    """What composing a batch needs beyond the rows themselves, loaded in two queries:
    the manual emails' reviewed drafts and the earlier emails follow-ups thread with;
    and the installation's signed-link maker (unsubscribe, open and click links).
    Keys are the rows' nullable step-run columns (never None here, as queried)."""

    drafts: dict[int | None, Task]
    parents: dict[tuple[int, int | None], Message]
    existing: dict[int | None, Message]  # by step run: a retry sends the very same message
    links: LinkMaker
    dkim: dict[str, DkimSigner] = field(default_factory=dict)  # by sending domain

    @classmethod
    def load(
        cls, session: Session, rows: list[tuple[StepRun, Enrollment]], ctx: Context
    ) -> MessageSources:
        run_ids = [run.id for run, _ in rows]
        existing = {
            m.step_run_id: m
            for m in session.scalars(select(Message).where(Message.step_run_id.in_(run_ids)))
        }
        manual = [run.id for run, _ in rows if run.send_ready]
        drafts: dict[int | None, Task] = {}
        if manual:
            drafts = {
                t.step_run_id: t
                for t in session.scalars(select(Task).where(Task.step_run_id.in_(manual)))
            }
        wanted: set[tuple[int, int]] = set()
        for run, enrollment in rows:
            target = enrollment.steps_snapshot[run.step_position - 1].get("thread_with_step")
            if target:
                wanted.add((enrollment.id, target))
        parents: dict[tuple[int, int | None], Message] = {}
        if wanted:
            found = session.execute(
                select(StepRun.enrollment_id, StepRun.step_position, Message)
                .join(Message, Message.step_run_id == StepRun.id)
                .where(
                    StepRun.enrollment_id.in_({e for e, _ in wanted}),
                    Message.status == MessageStatus.SENT,
                )
            )
            parents = {(e, p): m for e, p, m in found if (e, p) in wanted}
        return cls(drafts, parents, existing, link_maker(ctx, session), signers(ctx, session))


def compose(
    sources: MessageSources,
    run: StepRun,
    enrollment: Enrollment,
    contact: Contact,
    user: User,
    mailbox: Mailbox,
    now: datetime,
) -> Message:
    """The run's message, rendered and built (or, on a retry, the one it already has)."""
    if run.id in sources.existing:
        return sources.existing[run.id]
    return Message(**composed_columns(sources, run, enrollment, contact, user, mailbox, now))


def settings_of(enrollment: Enrollment) -> SequenceSettings:
    """The enrollment's settings snapshot, parsed once per distinct snapshot: a claim
    round reads the same few for hundreds of emails."""
    return _parse_settings(json.dumps(enrollment.settings_snapshot, sort_keys=True))


@lru_cache(maxsize=256)
def _parse_settings(key: str) -> SequenceSettings:
    return SequenceSettings.from_dict(json.loads(key))


def composed_columns(
    sources: MessageSources,
    run: StepRun,
    enrollment: Enrollment,
    contact: Contact,
    user: User,
    mailbox: Mailbox,
    now: datetime,
) -> dict[str, Any]:
    """The run's new message as its column values, rendered and built.

    Plain values, not a `Message`: a claim inserts a batch of them in one statement, and
    making an ORM object per email (each attribute set through the instrumentation) cost
    four times what building its MIME did (docs/benchmarks.md)."""
    if contact.email is None:  # cleared since enrolling: this step fails, not the batch
        raise CadenzaError(ErrorCode.MISSING_EMAIL, "the contact has no email address")
    spec = StepSpec.from_dict(enrollment.steps_snapshot[run.step_position - 1])
    settings = settings_of(enrollment)
    if run.send_ready:  # a manual email: the rep's reviewed draft is final
        task = sources.drafts[run.id]
        # Not a template: sanitised like a rendered body, whatever stored it (a draft saved
        # before drafts were cleaned, or written by another tool) and whatever the tracking.
        subject = " ".join((task.draft_subject or "").split())
        body = templates.clean_html(task.draft_body or "")
    else:
        subject, body = render_step(enrollment, contact, user, mailbox, spec, settings)
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    parent = sources.parents.get((enrollment.id, spec.thread_with_step))
    if parent is not None and settings.thread_follow_ups:
        subject = reply_subject(parent.subject)
        in_reply_to = parent.message_id
        references = (*(parent.references or "").split(), parent.message_id)
    tracking_id = new_tracking_id()
    content = tracking.decorate(
        body,
        sources.links,
        tracking_id,
        track_opens=settings.track_opens,
        track_clicks=settings.track_clicks,
    )
    email = OutgoingEmail(
        message_id=new_message_id(mailbox.from_email),
        from_email=mailbox.from_email,
        from_name=mailbox.from_name or None,
        to_email=contact.email,
        to_name=" ".join(p for p in (contact.firstname, contact.lastname) if p) or None,
        subject=subject,
        html_body=content.html,
        text_body=content.text,
        date=now,
        in_reply_to=in_reply_to,
        references=references,
        extra_headers=tracking.unsubscribe_headers(content.unsubscribe_url),
    )
    return {
        "step_run_id": run.id,
        "enrollment_id": enrollment.id,
        "mailbox_id": mailbox.id,
        "contact_id": contact.id,
        "message_id": email.message_id,
        "in_reply_to": in_reply_to,
        "references": " ".join(references) or None,
        "from_email": mailbox.from_email,
        "to_email": contact.email,
        "subject": subject,
        "body_html": content.untracked_html,
        "body_text": content.text,
        "raw": _signed(build_mime(email), sources.dkim.get(domain_of(mailbox.from_email))),
        "tracking_id": tracking_id,
        "links": content.links or None,
        "status": MessageStatus.PREPARED,
        "created_at": now,
        "variant": spec.variant,
        "template_id": spec.template_id,
    }


def _signed(raw: bytes, signer: DkimSigner | None) -> str:
    """The stored text of a message: signed here, once, when its domain has a DKIM key,
    so the bytes handed over (and any retry of them) carry the signature."""
    return (signer.sign(raw) if signer is not None else raw).decode("utf-8")


def _to_owner(
    owner: User, mailbox: Mailbox, subject: str, html_body: str, now: datetime
) -> Message:
    """An email from Cadenza to a user, from a mailbox (a reminder, a digest): a message
    row like any other email's (the outbox lists it, the daily limit counts it), but tied
    to no step run, enrollment or contact — it is no part of a sequence's results."""
    email = OutgoingEmail(
        message_id=new_message_id(mailbox.from_email),
        from_email=mailbox.from_email,
        from_name="Cadenza",
        to_email=owner.email,
        to_name=owner.firstname or None,
        subject=subject,
        html_body=html_body,
        date=now,
    )
    return Message(
        mailbox_id=mailbox.id,
        message_id=email.message_id,
        from_email=mailbox.from_email,
        to_email=owner.email,
        subject=email.subject,
        body_html=email.html_body,
        body_text=html_to_text(email.html_body),
        raw=build_mime(email).decode("utf-8"),
        status=MessageStatus.PREPARED,
        created_at=now,
    )


@dataclass(frozen=True)
class DigestLine:
    """One task of a digest, as listed: title, contact, due instant."""

    title: str
    contact: str | None
    due_at: datetime


DIGEST_MAX_LINES = 100  # a longer day is summed up as "and N more" (the queue has them all)


def compose_digest(
    owner: User,
    mailbox: Mailbox,
    day: date,
    zone: ZoneInfo,
    lines: list[DigestLine],
    total: int,
    queue_url: str,
    now: datetime,
) -> Message:
    """A user's daily digest: the day's open tasks (overdue ones first, marked), each
    with its contact and due time in the user's time zone, and a link to the queue."""
    start = datetime.combine(day, time(), zone)
    rows = []
    for line in lines[:DIGEST_MAX_LINES]:
        local = line.due_at.astimezone(zone)
        when = local.strftime("%H:%M")
        if local < start:
            when = f"overdue since {local.strftime('%a %d %b %H:%M')}"
        rows.append(
            f"<tr><td>{html.escape(when)}</td><td>{html.escape(line.title)}</td>"
            f"<td>{html.escape(line.contact or '')}</td></tr>"
        )
    more = total - len(rows)
    body = (
        f"<p>Your open tasks for {html.escape(day.strftime('%A %d %B %Y'))} "
        f"({html.escape(str(zone))}): {total}.</p>"
        "<table><thead><tr><th>Due</th><th>Task</th><th>Contact</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<p>And {more} more.</p>" if more > 0 else "")
        + f'<p><a href="{html.escape(queue_url, quote=True)}">Open your task queue</a></p>'
    )
    plural = "task" if total == 1 else "tasks"
    subject = f"Your tasks for {day.strftime('%a %d %b')}: {total} {plural}"
    return _to_owner(owner, mailbox, subject, body, now)


def compose_reminder(task: Task, owner: User, mailbox: Mailbox, now: datetime) -> Message:
    """A task reminder to its owner, from the enrollment's mailbox."""
    body = f"<p>Your task is due: {html.escape(task.title)}</p>" + (
        f"<p>{html.escape(task.notes)}</p>" if task.notes else ""
    )
    return _to_owner(owner, mailbox, f"Task due: {task.title}", body, now)
