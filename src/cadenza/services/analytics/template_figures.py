"""How each library template does: the steps using it, and what its emails achieved.

A message belongs to a template when its step used the template by reference at the
moment its enrollment started: compose copies the snapshot's `template_id` onto the
message (`messages.template_id`). So an edit never moves earlier sends to another text's
figures, and a step that copied a template (no reference) counts for no template.

Definitions follow docs/analytics.md: sent counts messages sent; opened and clicked
count messages with at least one human (unflagged) event; replied counts messages
answered by a (not revoked) reply: the reply names the message, or, matched by its
sender only, the latest message sent to that contact before it. Reply rate is
replied over sent. Counted by the database with GROUP BY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import aliased

from cadenza.domain.enums import ENGAGEMENT_KINDS, EventKind, MessageStatus
from cadenza.services.context import Context
from cadenza.services.sequences.templates_library import steps_using
from cadenza.store.models import EmailEvent, Message


@dataclass(frozen=True)
class TemplateFigures:
    template_id: int
    used_in_steps: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0

    @property
    def reply_rate(self) -> float | None:
        """Replied over sent, None before anything was sent."""
        return self.replied / self.sent if self.sent else None


def template_figures(ctx: Context, template_ids: Iterable[int]) -> dict[int, TemplateFigures]:
    """Figures for each of `template_ids` (a template with nothing yet has zeros)."""
    ids = sorted(set(template_ids))
    if not ids:
        return {}
    of_template = Message.template_id.in_(ids)
    human = EmailEvent.data["flagged"].as_string().is_(None)
    with ctx.db.read() as session:
        sent: dict[int | None, int] = dict(
            session.execute(
                select(Message.template_id, func.count())
                .where(of_template, Message.status == MessageStatus.SENT)
                .group_by(Message.template_id)
            ).all()
        )
        engaged: dict[tuple[int | None, str], int] = {
            (template_id, kind): count
            for template_id, kind, count in session.execute(
                select(Message.template_id, EmailEvent.kind, func.count(distinct(Message.id)))
                .join(EmailEvent, EmailEvent.message_id == Message.id)
                .where(of_template, EmailEvent.kind.in_(ENGAGEMENT_KINDS), human)
                .group_by(Message.template_id, EmailEvent.kind)
            )
        }
        answered = set(
            session.execute(
                select(Message.template_id, Message.id)
                .join(EmailEvent, EmailEvent.message_id == Message.id)
                .where(
                    of_template,
                    EmailEvent.kind == EventKind.REPLY,
                    EmailEvent.revoked_at.is_(None),
                )
            ).all()
        )
        earlier = aliased(Message)
        latest_before = (
            select(func.max(earlier.sent_at))
            .where(
                earlier.contact_id == EmailEvent.contact_id,
                earlier.sent_at <= EmailEvent.occurred_at,
            )
            .scalar_subquery()
        )
        answered |= set(
            session.execute(
                select(Message.template_id, Message.id)
                .join(EmailEvent, EmailEvent.contact_id == Message.contact_id)
                .where(
                    of_template,
                    EmailEvent.kind == EventKind.REPLY,
                    EmailEvent.message_id.is_(None),
                    EmailEvent.revoked_at.is_(None),
                    Message.sent_at == latest_before,
                )
            ).all()
        )
    replied: dict[int | None, int] = {}
    for template_id, _message in answered:
        replied[template_id] = replied.get(template_id, 0) + 1
    used = steps_using(ctx, ids)
    return {
        template_id: TemplateFigures(
            template_id=template_id,
            used_in_steps=used.get(template_id, 0),
            sent=sent.get(template_id, 0),
            opened=engaged.get((template_id, EventKind.OPEN), 0),
            clicked=engaged.get((template_id, EventKind.CLICK), 0),
            replied=replied.get(template_id, 0),
        )
        for template_id in ids
    }
