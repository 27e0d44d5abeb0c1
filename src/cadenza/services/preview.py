"""What a step would look like for one contact, before anyone is enrolled (the editor's
live preview). Missing tokens are reported, not raised: a draft may still be incomplete."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from cadenza.domain import templates
from cadenza.domain.errors import CadenzaError
from cadenza.domain.personalization import build_context
from cadenza.domain.steps import StepSpec
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.personalization import contact_values, sender_values
from cadenza.store.models import Contact, Mailbox, User


@dataclass
class StepPreview:
    position: int
    subject: str | None = None
    body_html: str | None = None
    problems: list[str] = field(default_factory=list)


def preview_steps(
    ctx: Context, specs: list[StepSpec], contact_id: int, user_id: int
) -> list[StepPreview]:
    with ctx.db.read() as session:
        contact = fetch(session, Contact, contact_id)
        user = fetch(session, User, user_id)
        mailbox = session.scalar(select(Mailbox).where(Mailbox.owner_id == user_id).limit(1))
        sender = (
            sender_values(user, mailbox)
            if mailbox
            else {"firstname": user.firstname or None, "email": user.email}
        )
        context = build_context(contact_values(contact), sender, {})
    previews = []
    by_position = {s.position: s for s in specs}
    for spec in specs:
        preview = StepPreview(spec.position)
        subject = spec.subject or spec.task_title
        if not subject and spec.thread_with_step in by_position:
            subject = by_position[spec.thread_with_step].subject
        try:
            preview.subject = templates.render_subject(subject or "", context)
        except CadenzaError as exc:
            preview.problems.append(exc.message)
        source = spec.body or spec.task_notes
        if source:
            try:
                preview.body_html = templates.clean_html(
                    templates.render(source, context, html=bool(spec.body))
                )
            except CadenzaError as exc:
                preview.problems.append(exc.message)
        previews.append(preview)
    return previews
