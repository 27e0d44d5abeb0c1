"""Sequences as the team's playbooks: folders, sharing, sequence templates and clones.

Every change here goes through the one policy with the sequence's sharing
(catalog.authorize_sequence): moving it to a folder is editing it (so a `team_edit`
sequence may be moved by any member), changing its sharing or making it a template is
its owner's and the admins' (`Action.SHARE`). A folder is a name on the sequences in it
(domain/folders.py), so renaming one renames it on each of them, and only when the
actor may edit every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, inspect, select

from cadenza.domain import policy
from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.folders import folder_name
from cadenza.domain.policy import Action, Resource, shared_owners
from cadenza.domain.sharing import parse_sharing
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.sequences.catalog import (
    SequenceView,
    authorize_sequence,
    clean_name,
    load_sequence,
    load_visible,
    visible_filter,
)
from cadenza.store.models import Sequence, SequenceStep, User

UNSET: Any = object()  # a PATCH field the client did not send

# A step's columns that belong to the step row itself, not to what it does: a clone gets
# its own. Every other column (template references, variants, ...) is copied as it is.
_OWN_STEP_COLUMNS = {"id", "sequence_id"}
COPY_PREFIX = "Copy of "
MAX_NAME = 200


@dataclass(frozen=True)
class Folder:
    name: str
    sequences: int  # how many sequences the actor sees in it


def update_placement(
    ctx: Context,
    sequence_id: int,
    *,
    actor_id: int | None,
    folder: Any = UNSET,
    sharing: Any = UNSET,
    is_template: Any = UNSET,
) -> SequenceView:
    """Moves a sequence to a folder (None: out of any), shares it, or makes it a sequence
    template; only what is given changes. A template is offered to the whole team, so a
    private sequence made a template becomes `team_use`."""
    changes: dict[str, Any] = {}
    if folder is not UNSET:
        changes["folder"] = folder_name(folder)
    if sharing is not UNSET:
        changes["sharing"] = parse_sharing(sharing)
    if is_template is not UNSET:
        if not isinstance(is_template, bool):
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "is_template must be true or false")
        changes["is_template"] = is_template
    if not changes:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "nothing to change: give folder, sharing or is_template"
        )
    with ctx.db.transaction() as session:
        sequence = load_sequence(session, sequence_id)
        if "folder" in changes:
            authorize_sequence(session, actor_id, sequence, Action.UPDATE)
        if changes.keys() & {"sharing", "is_template"}:
            authorize_sequence(session, actor_id, sequence, Action.SHARE)
        if changes.get("is_template") and changes.get("sharing", sequence.sharing) == (
            Sharing.PRIVATE
        ):
            changes["sharing"] = Sharing.TEAM_USE
        before = {key: getattr(sequence, key) for key in changes}
        for key, value in changes.items():
            setattr(sequence, key, value)
        sequence.updated_at = ctx.clock.now()
        record(session, ctx, actor_id, "sequence.placement", "sequence", sequence_id,
               {"before": before, "after": changes})  # fmt: skip
        session.flush()
        return SequenceView.of(sequence)


def clone_sequence(
    ctx: Context,
    sequence_id: int,
    actor_id: int,
    *,
    name: str | None = None,
    folder: Any = UNSET,
) -> SequenceView:
    """A new sequence of `actor_id`'s with the source's steps (every step column, so a
    step's template reference stays a reference), settings and folder: "Copy of …"
    unless named, private until shared. Creating a sequence from a sequence template is
    this too. The source may be archived; the copy is live."""
    with ctx.db.transaction() as session:
        source = load_visible(session, sequence_id, actor_id)
        authorize(session, actor_id, Resource.SEQUENCE, Action.CREATE)
        wanted = name if name is not None else (COPY_PREFIX + source.name)[:MAX_NAME]
        new_name = clean_name(wanted)
        now = ctx.clock.now()
        columns = [
            attr.key
            for attr in inspect(SequenceStep).column_attrs
            if attr.key not in _OWN_STEP_COLUMNS
        ]
        copy = Sequence(
            owner_id=actor_id,
            name=new_name,
            settings=dict(source.settings),
            folder=source.folder if folder is UNSET else folder_name(folder),
            sharing=Sharing.PRIVATE,
            is_template=False,
            created_at=now,
            updated_at=now,
            steps=[
                SequenceStep(**{key: getattr(step, key) for key in columns})
                for step in source.steps
            ],
        )
        session.add(copy)
        session.flush()
        record(session, ctx, actor_id, "sequence.clone", "sequence", copy.id,
               {"source_id": sequence_id})  # fmt: skip
        return SequenceView.of(load_sequence(session, copy.id))


def list_folders(ctx: Context, *, actor_id: int | None, archived: bool = False) -> list[Folder]:
    """The folders holding sequences the actor sees (live or archived), by name."""
    query = (
        select(Sequence.folder, func.count())
        .where(
            Sequence.folder.is_not(None),
            Sequence.archived_at.is_not(None) if archived else Sequence.archived_at.is_(None),
        )
        .group_by(Sequence.folder)
        .order_by(Sequence.folder)
    )
    with ctx.db.read() as session:
        visible = visible_filter(session, actor_id)
        if visible is not None:
            query = query.where(visible)
        return [Folder(name or "", count) for name, count in session.execute(query)]


def rename_folder(ctx: Context, old: str, new: str, *, actor_id: int | None) -> int:
    """Renames a folder on every sequence in it (archived ones too), or on none: the
    actor must be allowed to edit each. Returns how many were renamed."""
    old_name, new_name = folder_name(old), folder_name(new)
    if old_name is None or new_name is None:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "a folder needs a name")
    with ctx.db.transaction() as session:
        rows = list(session.scalars(select(Sequence).where(Sequence.folder == old_name)))
        actor = None if actor_id is None else fetch(session, User, actor_id)

        def may(sequence: Sequence, action: Action) -> bool:
            owners = shared_owners(sequence.owner_id, sequence.sharing, action)
            return actor is None or policy.may(actor, Resource.SEQUENCE, action, owners)

        if not any(may(sequence, Action.READ) for sequence in rows):
            raise CadenzaError(
                ErrorCode.NOT_FOUND, f"no sequence is in folder {old_name!r}", {"folder": old_name}
            )
        refused = sum(not may(sequence, Action.UPDATE) for sequence in rows)
        if refused:
            raise CadenzaError(
                ErrorCode.PERMISSION_DENIED,
                f"folder {old_name!r} holds {refused} sequence(s) you may not edit: "
                "their owners or an admin can rename it",
                {"folder": old_name, "refused": refused},
            )
        authorize(session, actor_id, Resource.SEQUENCE, Action.CREATE)  # names who did it
        for sequence in rows:
            sequence.folder = new_name
        record(session, ctx, actor_id, "sequence.folder_rename", "sequence", None,
               {"from": old_name, "to": new_name, "sequences": len(rows)})  # fmt: skip
        return len(rows)
