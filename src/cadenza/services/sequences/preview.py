"""What a step would look like for one contact, before anyone is enrolled (the editor's
live preview), and the one-line headline of each step that lists and choices show.
Missing tokens are reported, not raised: a draft may still be incomplete.

Nobody reading a list of steps wants template code: a headline is the subject or task
title filled with a contact's data (or, with no contact chosen, sample data), a
threaded email is "Re: " and its thread's subject exactly as the engine sends it, and a
token with no value becomes a readable placeholder, never `{{ ... }}`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select

from cadenza.domain import signatures, templates
from cadenza.domain.enums import StepType
from cadenza.domain.errors import CadenzaError
from cadenza.domain.message import reply_subject
from cadenza.domain.personalization import build_context
from cadenza.domain.steps import StepSpec
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.sequences.personalization import contact_values, sender_values
from cadenza.store.models import Contact, Mailbox, User

# Stands in for a contact when a sequence is shown without one (its page, the editor
# before a contact exists): plausible values, obviously made up.
SAMPLE_CONTACT = {
    "firstname": "Alex", "lastname": "Sample", "fullname": "Alex Sample",
    "email": "alex.sample@example.com", "company": "Example Co", "jobtitle": "Head of Sales",
    "industry": "software",
}  # fmt: skip
_EXPRESSION = re.compile(r"\{\{\s*([a-z_]+\.[a-z_0-9]+)?.*?\}\}", re.S)
_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)


def readable(source: str) -> str:
    """A template made readable without data: each value becomes ‹contact.company›."""
    text = _STATEMENT.sub("", source)
    text = _EXPRESSION.sub(lambda m: f"‹{m.group(1) or '…'}›", text)
    return " ".join(text.split())


def fill_headline(source: str, context) -> str:
    """Filled with what the context has; a token it lacks shows as ‹its name›."""
    for _ in range(2):
        try:
            filled = templates.render_subject(source, context)
            return filled.replace(signatures.PLACEHOLDER, "‹signature›") or readable(source)
        except CadenzaError as exc:
            tokens = (exc.details or {}).get("tokens") if isinstance(exc.details, dict) else None
            if not tokens:
                break
            context = {namespace: dict(values) for namespace, values in context.items()}
            for token in tokens:
                namespace, _, name = str(token).partition(".")
                context.setdefault(namespace, {})[name] = f"‹{token}›"
    return readable(source)


def step_headline(
    spec: StepSpec, by_position: dict[int, StepSpec], context, *, thread_follow_ups: bool = True
) -> str:
    """The subject the step will go out with (threaded: "Re: " its thread's subject, as
    services/compose does), or the task's title; filled with `context`."""
    parent = by_position.get(spec.thread_with_step) if spec.thread_with_step else None
    if parent is not None and parent.position >= spec.position:
        parent = None  # an unsaved draft may point anywhere: only earlier steps thread
    if spec.type is not StepType.TASK and parent and (thread_follow_ups or not spec.subject):
        return reply_subject(
            step_headline(parent, by_position, context, thread_follow_ups=thread_follow_ups)
        )
    if spec.type is StepType.TASK:
        return fill_headline(spec.task_title, context) if spec.task_title else str(spec.task_type)
    return fill_headline(spec.subject, context) if spec.subject else f"{spec.type} step"


def headline_context(ctx: Context, user_id: int, contact_id: int | None = None):
    """The values headlines are filled with: the contact's, else sample ones; the sender
    is the signed-in user with their first mailbox."""
    with ctx.db.read() as session:
        user = fetch(session, User, user_id)
        mailbox = session.scalar(select(Mailbox).where(Mailbox.owner_id == user_id).limit(1))
        sender = (
            sender_values(user, mailbox)
            if mailbox
            else {
                "firstname": user.firstname or None,
                "email": user.email,
                "signature": signatures.PLACEHOLDER,
                "meeting_link": user.meeting_link or None,
            }
        )
        values = (
            contact_values(fetch(session, Contact, contact_id))
            if contact_id is not None
            else SAMPLE_CONTACT
        )
        return build_context(values, sender, {})


def step_headlines(
    specs: list[StepSpec], context, *, thread_follow_ups: bool = True
) -> dict[int, str]:
    by_position = {s.position: s for s in specs}
    return {
        s.position: step_headline(s, by_position, context, thread_follow_ups=thread_follow_ups)
        for s in specs
    }


@dataclass
class StepPreview:
    position: int
    subject: str | None = None
    body_html: str | None = None
    problems: list[str] = field(default_factory=list)


def preview_steps(
    ctx: Context,
    specs: list[StepSpec],
    contact_id: int,
    user_id: int,
    *,
    thread_follow_ups: bool = True,
) -> list[StepPreview]:
    context = headline_context(ctx, user_id, contact_id)
    with ctx.db.read() as session:
        signature = fetch(session, User, user_id).signature_html
    previews = []
    by_position = {s.position: s for s in specs}
    for spec in specs:
        preview = StepPreview(spec.position)
        preview.subject = step_headline(
            spec, by_position, context, thread_follow_ups=thread_follow_ups
        )
        for source in (spec.subject, spec.task_title):
            try:
                if source:
                    templates.render_subject(source, context)
            except CadenzaError as exc:
                preview.problems.append(exc.message)
        source = spec.body or spec.task_notes
        if source:
            try:
                preview.body_html = signatures.fill(
                    templates.clean_html(templates.render(source, context, html=bool(spec.body))),
                    signature if spec.body else signatures.signature_text(signature),
                )
            except CadenzaError as exc:
                preview.problems.append(exc.message)
        previews.append(preview)
    return previews
