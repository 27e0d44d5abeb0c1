"""The template library: named emails (subject and body, the same sandboxed tokens as
steps) with an owner, a folder and a sharing (docs/content.md).

A step uses a template by reference (`sequence_steps.template_id`) or copies it. A
referencing step keeps the template's text in its own subject and body, and editing the
template rewrites those in the same transaction: the sequence then reads as it will
send, the editor and previews need nothing new, and an enrollment snapshots the text at
the moment it starts. So a template edit reaches enrollments that start afterwards and
never those already running.

Who may read or change a template is `policy.shared_may` (the one sharing rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cadenza.domain import policy, templates
from cadenza.domain.enums import Sharing, StepType
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sharing import parse_sharing
from cadenza.domain.steps import StepSpec
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.services.sequences import preview
from cadenza.store.models import EmailTemplate, SequenceStep, User

MAX_NAME = 200
MAX_FOLDER = 100
MAX_SEARCH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class TemplateView:
    id: int
    owner_id: int
    name: str
    subject: str
    body: str
    folder: str | None
    sharing: str
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _not_found(template_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.TEMPLATE_NOT_FOUND,
        f"template {template_id} does not exist",
        {"template_id": template_id},
    )


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{field} must be 1 to {limit} characters",
            {"field": field},
        )
    if _CONTROL.search(value):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"{field} must be one line of text", {"field": field}
        )
    return value.strip()


def _subject(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "a template needs a subject", {"field": "subject"}
        )
    templates.validate_template(value, field="subject")
    return value


def _body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "a template needs a body", {"field": "body"})
    templates.validate_template(value, field="body")
    return templates.sanitize_html(value)


def _load(session: Session, template_id: int) -> EmailTemplate:
    row = session.get(EmailTemplate, template_id)
    if row is None:
        raise _not_found(template_id)
    return row


def _check(
    session: Session, actor_id: int | None, row: EmailTemplate, action: Action
) -> User | None:
    """The actor as stored now, allowed `action` on `row` by the sharing rule (None: an
    internal caller). What they may not even read answers as a missing template."""
    if actor_id is None:
        return None
    actor = fetch(session, User, actor_id)
    policy.check_shared(
        actor, Resource.TEMPLATE, action, row.owner_id, row.sharing, hidden_as=_not_found(row.id)
    )
    return actor


def _refuse_archived(row: EmailTemplate) -> None:
    if row.archived_at is not None:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"template {row.id} ({row.name}) is archived: unarchive it first",
            {"template_id": row.id},
        )


def create_template(
    ctx: Context,
    actor_id: int,
    *,
    name: Any,
    subject: Any,
    body: Any,
    folder: Any = None,
    sharing: Any = Sharing.PRIVATE,
) -> TemplateView:
    values = {
        "name": _text(name, "name", MAX_NAME),
        "subject": _subject(subject),
        "body": _body(body),
        "folder": _text(folder, "folder", MAX_FOLDER, required=False),
        "sharing": parse_sharing(sharing),
    }
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.TEMPLATE, Action.CREATE)
        row = EmailTemplate(owner_id=actor_id, created_at=now, updated_at=now, **values)
        session.add(row)
        session.flush()
        record(session, ctx, actor_id, "template.create", "template", row.id)
        return copy_row(TemplateView, row)


def update_template(
    ctx: Context, actor_id: int | None, template_id: int, changes: dict[str, Any]
) -> TemplateView:
    """Changes what `changes` names (name, subject, body, folder, sharing). A new
    subject or body is copied into every step using the template by reference, so
    enrollments that start from now on send it; running ones keep their snapshots.
    Changing the sharing is the owner's or an admin's, as archiving is."""
    unknown = sorted(set(changes) - {"name", "subject", "body", "folder", "sharing"})
    if unknown:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"unknown field(s): {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    if "name" in changes:
        clean["name"] = _text(changes["name"], "name", MAX_NAME)
    if "subject" in changes:
        clean["subject"] = _subject(changes["subject"])
    if "body" in changes:
        clean["body"] = _body(changes["body"])
    if "folder" in changes:
        clean["folder"] = _text(changes["folder"], "folder", MAX_FOLDER, required=False)
    if "sharing" in changes:
        clean["sharing"] = parse_sharing(changes["sharing"])
    with ctx.db.transaction() as session:
        row = _load(session, template_id)
        _check(session, actor_id, row, Action.UPDATE)
        if "sharing" in clean and clean["sharing"] != row.sharing:
            _check(session, actor_id, row, Action.DELETE)
        _refuse_archived(row)
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_at = ctx.clock.now()
        if {"subject", "body"} & set(clean):
            session.execute(
                update(SequenceStep)
                .where(SequenceStep.template_id == template_id)
                .values(subject=row.subject, body=row.body)
            )
        record(session, ctx, actor_id, "template.update", "template", template_id)
        return copy_row(TemplateView, row)


def set_archived(
    ctx: Context, actor_id: int | None, template_id: int, archived: bool
) -> TemplateView:
    """Archived templates leave the pickers; steps already using them keep their text."""
    with ctx.db.transaction() as session:
        row = _load(session, template_id)
        _check(session, actor_id, row, Action.DELETE)
        if (row.archived_at is not None) != archived:
            row.archived_at = ctx.clock.now() if archived else None
            verb = "archive" if archived else "unarchive"
            record(session, ctx, actor_id, f"template.{verb}", "template", template_id)
        return copy_row(TemplateView, row)


def get_template(ctx: Context, actor_id: int | None, template_id: int) -> TemplateView:
    with ctx.db.read() as session:
        row = _load(session, template_id)
        _check(session, actor_id, row, Action.READ)
        return copy_row(TemplateView, row)


def may_edit(ctx: Context, actor_id: int, template: TemplateView) -> tuple[bool, bool]:
    """(may change its content, may change its sharing or archive it): what a page offers."""
    with ctx.db.read() as session:
        actor = fetch(session, User, actor_id)
    args = (template.owner_id, template.sharing)
    return (
        policy.shared_may(actor, Resource.TEMPLATE, Action.UPDATE, *args),
        policy.shared_may(actor, Resource.TEMPLATE, Action.DELETE, *args),
    )


def _visible(session: Session, actor_id: int | None):
    """The templates `actor_id` may read: all for an admin, else their own and shared ones."""
    if actor_id is None or policy.is_admin(fetch(session, User, actor_id)):
        return EmailTemplate.id.is_not(None)
    return or_(EmailTemplate.owner_id == actor_id, EmailTemplate.sharing != Sharing.PRIVATE)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_templates(
    ctx: Context,
    actor_id: int | None,
    *,
    search: str | None = None,
    folder: str | None = None,
    archived: bool = False,
    limit: int | None = None,
    after_id: int | None = None,
) -> list[TemplateView]:
    """The live (or archived) templates the actor may read, searched by name or subject
    (case-insensitive substring), optionally in one folder."""
    with ctx.db.read() as session:
        query = (
            select(EmailTemplate)
            .where(
                _visible(session, actor_id),
                EmailTemplate.archived_at.is_not(None)
                if archived
                else EmailTemplate.archived_at.is_(None),
            )
            .order_by(EmailTemplate.id)
            .limit(limit)
        )
        if search and search.strip():
            pattern = f"%{_escape_like(search.strip()[:MAX_SEARCH].lower())}%"
            query = query.where(
                or_(
                    func.lower(EmailTemplate.name).like(pattern, escape="\\"),
                    func.lower(EmailTemplate.subject).like(pattern, escape="\\"),
                )
            )
        if folder:
            query = query.where(EmailTemplate.folder == folder)
        if after_id is not None:
            query = query.where(EmailTemplate.id > after_id)
        return [copy_row(TemplateView, row) for row in session.scalars(query)]


def folders(ctx: Context, actor_id: int | None) -> list[str]:
    """The folder names in use among the templates the actor may read."""
    with ctx.db.read() as session:
        found = session.scalars(
            select(EmailTemplate.folder)
            .where(_visible(session, actor_id), EmailTemplate.folder.is_not(None))
            .distinct()
        ).all()
    return sorted(name for name in found if name is not None)


def preview_template(
    ctx: Context, actor_id: int, template_id: int, contact_id: int
) -> preview.StepPreview:
    """The template as one contact would receive it, with the sender being the actor."""
    template = get_template(ctx, actor_id, template_id)
    spec = StepSpec(position=1, type=StepType.EMAIL, subject=template.subject, body=template.body)
    return preview.preview_steps(ctx, [spec], contact_id, actor_id)[0]


def with_template_text(
    session: Session, actor_id: int | None, steps: Any
) -> list[dict[str, Any]] | Any:
    """Steps to be saved, each one naming a `template_id` given that template's current
    subject and body (by reference). The template must be live and readable by the
    actor; a missing or hidden one is `template_not_found` naming the step."""
    if not isinstance(steps, list):
        return steps  # parse_steps refuses it with its own words
    filled: list[Any] = []
    for position, step in enumerate(steps, start=1):
        template_id = step.get("template_id") if isinstance(step, dict) else None
        if not isinstance(template_id, int) or isinstance(template_id, bool):
            filled.append(step)
            continue
        if step.get("type") == StepType.TASK:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"step {position}: a task step cannot use an email template",
                {"step": position, "field": "template_id"},
            )
        try:
            row = _load(session, template_id)
            _check(session, actor_id, row, Action.READ)
            _refuse_archived(row)
        except CadenzaError as exc:
            exc.message = f"step {position}: {exc.message}"
            exc.details = {**(exc.details or {}), "step": position, "field": "template_id"}
            raise
        filled.append({**step, "subject": row.subject, "body": row.body})
    return filled


def steps_using(ctx: Context, template_ids: list[int]) -> dict[int, int]:
    """Template id -> how many sequence steps use it by reference."""
    if not template_ids:
        return {}
    with ctx.db.read() as session:
        rows = session.execute(
            select(SequenceStep.template_id, func.count())
            .where(SequenceStep.template_id.in_(template_ids))
            .group_by(SequenceStep.template_id)
        ).all()
    return {template_id: count for template_id, count in rows if template_id is not None}
