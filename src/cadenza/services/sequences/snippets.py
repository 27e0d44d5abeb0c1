"""Snippets: short named blocks of text a rep inserts while writing, from the editor's
toolbar or by typing `#name` (docs/content.md).

A snippet is copied where it is inserted, at edit time: editing or deleting it later
changes nothing already written. Its text may hold the same sandboxed tokens as a
template, checked when it is saved. Names are unique per owner; the sharing rule is
the templates' (`policy.shared_may`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cadenza.domain import policy, templates
from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sharing import parse_sharing
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import Snippet, User

NAME = re.compile(r"[a-z0-9_-]{1,50}")
MAX_BODY = 5_000
MAX_SNIPPETS = 500  # what one listing (and the editor's autocomplete) carries


@dataclass(frozen=True)
class SnippetView:
    id: int
    owner_id: int
    name: str
    body: str
    sharing: str
    created_at: datetime
    updated_at: datetime


def _not_found(snippet_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.SNIPPET_NOT_FOUND, f"snippet {snippet_id} does not exist", {"id": snippet_id}
    )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "a snippet's name is its shortcut: 1 to 50 of a-z, 0-9, _ and -",
            {"field": "name"},
        )
    return value


def _body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_BODY:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a snippet's text must be 1 to {MAX_BODY} characters",
            {"field": "body"},
        )
    templates.validate_template(value, field="body")
    return value


def _refuse_taken(session: Session, owner_id: int, name: str, but: int | None = None) -> None:
    query = select(Snippet.id).where(Snippet.owner_id == owner_id, Snippet.name == name)
    if but is not None:
        query = query.where(Snippet.id != but)
    if session.scalar(query) is not None:
        raise CadenzaError(
            ErrorCode.CONFLICT, f"you already have a snippet named #{name}", {"field": "name"}
        )


def _loaded(session: Session, actor_id: int | None, snippet_id: int, action: Action) -> Snippet:
    row = session.get(Snippet, snippet_id)
    if row is None:
        raise _not_found(snippet_id)
    if actor_id is not None:
        actor = fetch(session, User, actor_id)
        policy.check_shared(
            actor, Resource.SNIPPET, action, row.owner_id, row.sharing, hidden_as=_not_found(row.id)
        )
    return row


def create_snippet(
    ctx: Context, actor_id: int, *, name: Any, body: Any, sharing: Any = Sharing.PRIVATE
) -> SnippetView:
    clean_name, clean_body, clean_sharing = _name(name), _body(body), parse_sharing(sharing)
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.SNIPPET, Action.CREATE)
        _refuse_taken(session, actor_id, clean_name)
        row = Snippet(
            owner_id=actor_id,
            name=clean_name,
            body=clean_body,
            sharing=clean_sharing,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        record(session, ctx, actor_id, "snippet.create", "snippet", row.id)
        return copy_row(SnippetView, row)


def update_snippet(
    ctx: Context, actor_id: int | None, snippet_id: int, changes: dict[str, Any]
) -> SnippetView:
    unknown = sorted(set(changes) - {"name", "body", "sharing"})
    if unknown:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"unknown field(s): {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    if "name" in changes:
        clean["name"] = _name(changes["name"])
    if "body" in changes:
        clean["body"] = _body(changes["body"])
    if "sharing" in changes:
        clean["sharing"] = parse_sharing(changes["sharing"])
    with ctx.db.transaction() as session:
        row = _loaded(session, actor_id, snippet_id, Action.UPDATE)
        if "sharing" in clean and clean["sharing"] != row.sharing:
            _loaded(session, actor_id, snippet_id, Action.DELETE)
        if "name" in clean:
            _refuse_taken(session, row.owner_id, clean["name"], but=row.id)
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_at = ctx.clock.now()
        record(session, ctx, actor_id, "snippet.update", "snippet", snippet_id)
        return copy_row(SnippetView, row)


def delete_snippet(ctx: Context, actor_id: int | None, snippet_id: int) -> None:
    """Gone for good: text it was inserted into keeps its copy."""
    with ctx.db.transaction() as session:
        row = _loaded(session, actor_id, snippet_id, Action.DELETE)
        session.delete(row)
        record(session, ctx, actor_id, "snippet.delete", "snippet", snippet_id)


def get_snippet(ctx: Context, actor_id: int | None, snippet_id: int) -> SnippetView:
    with ctx.db.read() as session:
        return copy_row(SnippetView, _loaded(session, actor_id, snippet_id, Action.READ))


def list_snippets(
    ctx: Context,
    actor_id: int | None,
    *,
    limit: int = MAX_SNIPPETS,
) -> list[SnippetView]:
    """The actor's own snippets first (a `#name` finds theirs before a colleague's of the
    same name), then those shared with the team; an admin sees everyone's."""
    with ctx.db.read() as session:
        query = select(Snippet).order_by(Snippet.id).limit(limit)
        if actor_id is not None:
            actor = fetch(session, User, actor_id)
            if not policy.is_admin(actor):
                query = query.where(
                    or_(Snippet.owner_id == actor_id, Snippet.sharing != Sharing.PRIVATE)
                )
        rows = [copy_row(SnippetView, row) for row in session.scalars(query)]
    return sorted(rows, key=lambda s: (s.owner_id != actor_id, s.name, s.id))
