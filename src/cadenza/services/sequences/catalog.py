"""Sequences and their ordered steps.

A save replaces the whole step list (as the editor and `PUT` send it); running
enrollments are unaffected because each holds its own snapshot of the steps.

Who sees a sequence follows its sharing (domain/policy.py `shared_owners`): every read
here goes through `load_visible` or the listing's filter, so a private sequence is not
found by anyone but its owner and the admins, wherever they look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, false, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from cadenza.domain import policy
from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.folders import folder_name
from cadenza.domain.policy import Action, Resource, shared_owners
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.sharing import parse_sharing
from cadenza.domain.steps import StepSpec, parse_steps
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.services.sequences.templates_library import with_template_text
from cadenza.services.sequences.variants import clear_changed_winners
from cadenza.store.models import Sequence, SequenceStep, User


@dataclass(frozen=True)
class StepView:
    """One step of a sequence as shown and edited (`step_specs` reads it as a StepSpec)."""

    id: int
    sequence_id: int
    position: int
    type: str
    delay_days: int
    delay_hours: int
    subject: str | None
    body: str | None
    thread_with_step: int | None
    task_type: str | None
    task_title: str | None
    task_notes: str | None
    task_priority: str | None
    continue_without_completing: bool
    variants: list[Any] | None
    winner_after: int | None
    template_id: int | None


@dataclass(frozen=True)
class SequenceView:
    """A sequence with its steps in order, as the web app and the CLI see it."""

    id: int
    owner_id: int
    name: str
    settings: dict[str, Any]
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    steps: list[StepView]
    folder: str | None
    sharing: Sharing
    is_template: bool

    @classmethod
    def of(cls, row: Sequence) -> SequenceView:
        return copy_row(cls, row, steps=[copy_row(StepView, step) for step in row.steps])

    def owners(self, action: str) -> list[int | None]:
        """Its owners for `action` (the pages' `may` asks with them)."""
        return shared_owners(self.owner_id, self.sharing, Action(action))


def clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "name must be 1 to 200 characters")
    return name.strip()


def _validated(
    name: Any, settings: Any, steps: Any
) -> tuple[str, SequenceSettings, list[StepSpec]]:
    return clean_name(name), SequenceSettings.from_dict(settings), parse_steps(steps or [])


def _step_rows(specs: list[StepSpec]) -> list[SequenceStep]:
    rows = []
    for spec in specs:
        data = spec.to_dict()
        data.pop("variant", None)  # an enrollment snapshot's, never the sequence's
        rows.append(SequenceStep(**data))
    return rows


def create_sequence(
    ctx: Context,
    owner_id: int,
    name: str,
    *,
    settings: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    folder: str | None = None,
    sharing: str = Sharing.TEAM_USE,
) -> SequenceView:
    """New sequences are shared with the team to use (`team_use`), as every sequence was
    before sharing existed; `sharing` says otherwise."""
    clean_folder, clean_sharing = folder_name(folder), parse_sharing(sharing)
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, owner_id, Resource.SEQUENCE, Action.CREATE)
        steps = with_template_text(session, owner_id, steps)
        clean_name, clean_settings, specs = _validated(name, settings, steps)
        sequence = Sequence(
            owner_id=owner_id,
            name=clean_name,
            settings=clean_settings.to_dict(),
            created_at=now,
            updated_at=now,
            steps=_step_rows(specs),
            folder=clean_folder,
            sharing=clean_sharing,
        )
        session.add(sequence)
        session.flush()
        record(session, ctx, owner_id, "sequence.create", "sequence", sequence.id)
        return SequenceView.of(sequence)


def load_sequence(session: Session, sequence_id: int) -> Sequence:
    """Any sequence, archived or not: an archived one stays readable (its page, stats,
    analytics and running enrollments), flagged by `archived_at`."""
    found = session.execute(_WITH_STEPS, {"sequence_id": sequence_id})
    sequence = found.unique().scalar_one_or_none()
    if sequence is None:
        raise CadenzaError(
            ErrorCode.SEQUENCE_NOT_FOUND,
            f"sequence {sequence_id} does not exist",
            {"sequence_id": sequence_id},
        )
    return sequence


# A sequence read with its steps, in the same statement (every enroll asks it).
WITH_STEPS = joinedload(Sequence.steps)
_WITH_STEPS = select(Sequence).where(Sequence.id == bindparam("sequence_id")).options(WITH_STEPS)


def load_live_sequence(session: Session, sequence_id: int) -> Sequence:
    """A sequence that may be changed or enrolled into: archived ones are refused, saying
    how to bring them back."""
    sequence = load_sequence(session, sequence_id)
    _refuse_archived(sequence)
    return sequence


def _refuse_archived(sequence: Sequence) -> None:
    if sequence.archived_at is not None:
        sequence_id = sequence.id
        raise CadenzaError(
            ErrorCode.SEQUENCE_ARCHIVED,
            f"sequence {sequence_id} ({sequence.name}) is archived: unarchive it first",
            {"sequence_id": sequence_id},
        )


def _not_found(sequence_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.SEQUENCE_NOT_FOUND,
        f"sequence {sequence_id} does not exist",
        {"sequence_id": sequence_id},
    )


def authorize_sequence(
    session: Session, actor_id: int | None, sequence: Sequence, action: Action
) -> None:
    """The policy for `action` on `sequence`, owners as its sharing says; one who may not
    even see it is told it does not exist, one who sees it is told it is not theirs."""
    readers = shared_owners(sequence.owner_id, sequence.sharing, Action.READ)
    authorize(session, actor_id, Resource.SEQUENCE, Action.READ, readers,
              hidden_as=_not_found(sequence.id))  # fmt: skip
    if action is not Action.READ:
        owners = shared_owners(sequence.owner_id, sequence.sharing, action)
        authorize(session, actor_id, Resource.SEQUENCE, action, owners)


def load_visible(
    session: Session, sequence_id: int, actor_id: int | None, action: Action = Action.READ
) -> Sequence:
    """A sequence the actor may `action` (archived ones too): private ones of others are
    not found."""
    sequence = load_sequence(session, sequence_id)
    authorize_sequence(session, actor_id, sequence, action)
    return sequence


def usable_sequence(sequence: Sequence | None, sequence_id: int, user: policy.Actor) -> Sequence:
    """`sequence` (read with its steps, `WITH_STEPS`, or None if there is no sequence
    `sequence_id`) if it is a live sequence `user` may enroll into (one they can see):
    the enroll path's, for a person or for an automation rule acting as its user."""
    if sequence is None:
        raise _not_found(sequence_id)
    owners = shared_owners(sequence.owner_id, sequence.sharing, Action.READ)
    if not policy.may(user, Resource.SEQUENCE, Action.READ, owners):
        raise _not_found(sequence_id)
    _refuse_archived(sequence)
    return sequence


def get_sequence(
    ctx: Context, sequence_id: int, *, actor_id: int | None = None, to_change: bool = False
) -> SequenceView:
    """`to_change`: the actor opens it to edit (the editor), so must be allowed to, and
    an archived sequence is refused (`sequence_archived`: unarchive it first)."""
    with ctx.db.read() as session:
        action = Action.UPDATE if to_change else Action.READ
        sequence = load_visible(session, sequence_id, actor_id, action)
        if to_change:
            _refuse_archived(sequence)
        return SequenceView.of(sequence)


def visible_filter(session: Session, actor_id: int | None) -> Any:
    """The listing's filter: everything for an admin (or an internal caller), else one's
    own and those shared with the team."""
    if actor_id is None:
        return None
    actor = fetch(session, User, actor_id)
    if policy.is_admin(actor):
        return None
    shared = policy.shared_for(Action.READ)
    return or_(Sequence.owner_id == actor.id, Sequence.sharing.in_(shared) if shared else false())


def list_sequences(
    ctx: Context,
    *,
    limit: int | None = None,
    after_id: int | None = None,
    archived: bool = False,
    actor_id: int | None = None,
    folder: str | None = None,
    sharing: str | None = None,
    templates: bool | None = None,
) -> list[SequenceView]:
    """The live sequences, or (archived=True) only the archived ones, that the actor may
    see; narrowed to a folder, a sharing, or (templates=True) the sequence templates."""
    query = (
        select(Sequence)
        .where(Sequence.archived_at.is_not(None) if archived else Sequence.archived_at.is_(None))
        .order_by(Sequence.id)
        .options(selectinload(Sequence.steps))
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(Sequence.id > after_id)
    if folder is not None:
        query = query.where(Sequence.folder == folder_name(folder))
    if sharing is not None:
        query = query.where(Sequence.sharing == parse_sharing(sharing))
    if templates is not None:
        query = query.where(Sequence.is_template.is_(templates))
    with ctx.db.read() as session:
        visible = visible_filter(session, actor_id)
        if visible is not None:
            query = query.where(visible)
        return [SequenceView.of(row) for row in session.scalars(query)]


def replace_sequence(
    ctx: Context,
    sequence_id: int,
    *,
    name: str,
    settings: dict[str, Any] | None,
    steps: list[dict[str, Any]],
    actor_id: int | None = None,
) -> SequenceView:
    with ctx.db.transaction() as session:
        sequence = load_visible(session, sequence_id, actor_id, Action.UPDATE)
        _refuse_archived(sequence)
        steps = with_template_text(session, actor_id, steps)
        clean_name, clean_settings, specs = _validated(name, settings, steps)
        sequence.name = clean_name
        sequence.settings = clean_settings.to_dict()
        sequence.updated_at = ctx.clock.now()
        clear_changed_winners(session, sequence_id, step_specs(sequence), specs)
        session.execute(delete(SequenceStep).where(SequenceStep.sequence_id == sequence_id))
        session.expire(sequence, ["steps"])
        for row in _step_rows(specs):
            row.sequence_id = sequence_id
            session.add(row)
        session.flush()
        record(session, ctx, actor_id, "sequence.update", "sequence", sequence_id)
        return SequenceView.of(load_sequence(session, sequence_id))


def archive_sequence(ctx: Context, sequence_id: int, actor_id: int | None = None) -> SequenceView:
    """Archived, not deleted: enrollments in flight keep running from their snapshots,
    nobody new can be enrolled, and it can be unarchived."""
    with ctx.db.transaction() as session:
        sequence = load_visible(session, sequence_id, actor_id, Action.DELETE)
        _refuse_archived(sequence)
        sequence.archived_at = ctx.clock.now()
        record(session, ctx, actor_id, "sequence.archive", "sequence", sequence_id)
        return SequenceView.of(sequence)


def unarchive_sequence(ctx: Context, sequence_id: int, actor_id: int | None = None) -> SequenceView:
    """Back in the list and open to enrollment again; a live sequence is left as it is."""
    with ctx.db.transaction() as session:
        sequence = load_visible(session, sequence_id, actor_id, Action.DELETE)
        if sequence.archived_at is not None:
            sequence.archived_at = None
            record(session, ctx, actor_id, "sequence.unarchive", "sequence", sequence_id)
        return SequenceView.of(sequence)


def step_specs(sequence: Sequence | SequenceView) -> list[StepSpec]:
    return [
        StepSpec.from_dict(
            {
                "position": s.position,
                "type": s.type,
                "delay_days": s.delay_days,
                "delay_hours": s.delay_hours,
                "subject": s.subject,
                "body": s.body,
                "thread_with_step": s.thread_with_step,
                "task_type": s.task_type,
                "task_title": s.task_title,
                "task_notes": s.task_notes,
                "task_priority": s.task_priority,
                "continue_without_completing": s.continue_without_completing,
                "variants": s.variants,
                "winner_after": s.winner_after,
                "template_id": s.template_id,
            }
        )
        for s in sequence.steps
    ]
