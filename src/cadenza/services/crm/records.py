"""Records of any object type (companies, deals, tickets, custom types), their object
types, and their associations with contacts.

One generic design serves built-in and custom types alike: a type declares typed
properties (domain/record_types.py) and every record write is checked against them.
Any change that could move a contact in or out of an active list refreshes membership
for the contacts concerned, in the same transaction (services/crm/membership.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain import record_types
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record as audit
from cadenza.services.context import Context
from cadenza.services.crm import membership
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import (
    Association,
    Contact,
    Enrollment,
    ObjectType,
    Record,
)

MAX_NAME = 300


# -- object types -----------------------------------------------------------------------


@dataclass(frozen=True)
class TypeView:
    """An object type as the API, the pages and the CLI show it: its declared properties."""

    id: int
    name: str
    plural: str
    label: str
    builtin: bool
    properties: list[Any]
    created_at: datetime

    @classmethod
    def of(cls, row: ObjectType) -> TypeView:
        return copy_row(cls, row, properties=list(row.properties or []))


def type_not_found(name: str) -> CadenzaError:
    return CadenzaError(ErrorCode.NOT_FOUND, f"no object type {name!r}", {"type": name})


def find_type(session: Session, name: str) -> ObjectType:
    """By name ("company") or plural ("companies")."""
    found = session.scalar(
        select(ObjectType).where(or_(ObjectType.name == name, ObjectType.plural == name))
    )
    if found is None:
        raise type_not_found(name)
    return found


def list_types(ctx: Context) -> list[TypeView]:
    with ctx.db.read() as session:
        return [TypeView.of(t) for t in session.scalars(select(ObjectType).order_by(ObjectType.id))]


def get_type(ctx: Context, name: str) -> TypeView:
    with ctx.db.read() as session:
        return TypeView.of(find_type(session, name))


def create_type(
    ctx: Context,
    actor_id: int | None,
    *,
    name: str,
    plural: str,
    label: str | None = None,
    properties: list | None = None,
) -> TypeView:
    name = record_types.check_type_name(name, "name")
    plural = record_types.check_type_name(plural, "plural")
    if name == plural:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "plural must differ from name", {"field": "plural"}
        )
    definitions = record_types.check_properties(properties or [])
    try:
        with ctx.db.transaction() as session:
            authorize(session, actor_id, Resource.OBJECT_TYPE, Action.CREATE)
            taken = session.scalar(
                select(ObjectType.name).where(
                    or_(
                        ObjectType.name.in_([name, plural]),
                        ObjectType.plural.in_([name, plural]),
                    )
                )
            )
            if taken:
                raise _type_taken(name, plural)
            object_type = ObjectType(
                name=name,
                plural=plural,
                label=(label or name.replace("_", " ").capitalize())[:100],
                builtin=False,
                properties=definitions,
                created_at=ctx.clock.now(),
            )
            session.add(object_type)
            session.flush()
            audit(session, ctx, actor_id, "object_type.create", "object_type", object_type.id)
    except IntegrityError:
        raise _type_taken(name, plural) from None
    return TypeView.of(object_type)


def _type_taken(name: str, plural: str) -> CadenzaError:
    return CadenzaError(
        ErrorCode.CONFLICT, f"an object type named {name!r} or {plural!r} already exists"
    )


def update_type(ctx: Context, actor_id: int | None, name: str, changes: dict) -> TypeView:
    """Label and properties may change; removing a property leaves old values unread."""
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.OBJECT_TYPE, Action.UPDATE)
        object_type = find_type(session, name)
        if changes.get("label"):
            object_type.label = str(changes["label"])[:100]
        if "properties" in changes:
            object_type.properties = record_types.check_properties(changes["properties"])
        audit(session, ctx, actor_id, "object_type.update", "object_type", object_type.id)
    return TypeView.of(object_type)


def delete_type(ctx: Context, actor_id: int | None, name: str) -> None:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.OBJECT_TYPE, Action.DELETE)
        object_type = find_type(session, name)
        if object_type.builtin:
            raise CadenzaError(
                ErrorCode.INVALID_STATE, f"{object_type.name} is built in: it cannot be deleted"
            )
        count = session.scalar(
            select(func.count()).select_from(Record).where(Record.type_id == object_type.id)
        )
        if count:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                f"{object_type.plural} still has {count} records: delete them first",
                {"records": count},
            )
        session.delete(object_type)
        audit(session, ctx, actor_id, "object_type.delete", "object_type", object_type.id)


# -- records ----------------------------------------------------------------------------


@dataclass
class AssociationIn:
    contact_id: int
    primary: bool = False


@dataclass(frozen=True)
class RecordRow:
    """A record's own values."""

    id: int
    type_id: int
    name: str
    properties: dict[str, Any]
    owner_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Record) -> RecordRow:
        return copy_row(cls, row, properties=dict(row.properties or {}))


@dataclass(frozen=True)
class AssociationRow:
    """A record linked to a contact (`is_primary`: the contact's main one of the type)."""

    id: int
    record_id: int
    contact_id: int
    is_primary: bool
    created_at: datetime


@dataclass(frozen=True)
class RecordEnrollment:
    """An enrollment made from the record, as its page lists them."""

    id: int
    contact_id: int
    sequence_id: int
    state: str
    enrolled_at: datetime
    source_record_id: int | None


@dataclass(frozen=True)
class RecordView:
    """A record with its type, its contacts and (on its page) the enrollments made
    from it."""

    record: RecordRow
    object_type: TypeView
    associations: list[AssociationRow] = field(default_factory=list)
    enrollments: list[RecordEnrollment] = field(default_factory=list)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"name must be 1 to {MAX_NAME} characters",
            {"field": "name"},
        )
    return name.strip()


def _not_found(object_type: ObjectType, record_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.NOT_FOUND, f"{object_type.name} {record_id} does not exist", {"id": record_id}
    )


def fetch_record(
    session: Session, object_type: ObjectType, record_id: int, *, for_update: bool = False
) -> Record:
    found = session.get(Record, record_id, with_for_update=for_update or None)
    if found is None or found.type_id != object_type.id:
        raise _not_found(object_type, record_id)
    return found


def set_properties(record: Record, object_type: ObjectType, values: dict) -> None:
    clean = record_types.check_values(object_type.properties, values)
    merged = {**(record.properties or {}), **clean}
    record.properties = {k: v for k, v in merged.items() if v is not None}


def create_record(
    ctx: Context,
    actor_id: int | None,
    type_name: str,
    *,
    name: str,
    properties: dict | None = None,
    associations: list[AssociationIn] | None = None,
) -> RecordView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.RECORD, Action.CREATE)
        object_type = find_type(session, type_name)
        record = Record(
            type_id=object_type.id,
            name=_check_name(name),
            properties={},
            owner_id=actor_id,
            created_at=now,
            updated_at=now,
        )
        set_properties(record, object_type, properties or {})
        session.add(record)
        session.flush()
        touched = set_associations(session, now, record, associations or [])
        membership.refresh(session, now, touched)
        audit(session, ctx, actor_id, f"{object_type.name}.create", "record", record.id)
        return _view(session, object_type, record)


def update_record(
    ctx: Context, actor_id: int | None, type_name: str, record_id: int, changes: dict
) -> RecordView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        object_type = find_type(session, type_name)
        record = fetch_record(session, object_type, record_id, for_update=True)
        authorize(session, actor_id, Resource.RECORD, Action.UPDATE, [record.owner_id])
        if "name" in changes:
            record.name = _check_name(changes["name"])
        if "properties" in changes:
            set_properties(record, object_type, changes["properties"] or {})
        record.updated_at = now
        session.flush()
        membership.refresh(session, now, _associated_ids(session, record.id))
        audit(session, ctx, actor_id, f"{object_type.name}.update", "record", record_id)
        return _view(session, object_type, record)


def delete_record(ctx: Context, actor_id: int | None, type_name: str, record_id: int) -> None:
    """Its associations go with it; enrollments made from it forget where they came from."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        object_type = find_type(session, type_name)
        record = fetch_record(session, object_type, record_id, for_update=True)
        authorize(session, actor_id, Resource.RECORD, Action.DELETE, [record.owner_id])
        contact_ids = _associated_ids(session, record_id)
        session.execute(
            update(Enrollment)
            .where(Enrollment.source_record_id == record_id)
            .values(source_record_id=None)
        )
        session.query(Association).filter(Association.record_id == record_id).delete()
        session.delete(record)
        session.flush()
        membership.refresh(session, now, contact_ids)
        audit(session, ctx, actor_id, f"{object_type.name}.delete", "record", record_id)


def get_record(ctx: Context, type_name: str, record_id: int) -> RecordView:
    with ctx.db.read() as session:
        object_type = find_type(session, type_name)
        record = fetch_record(session, object_type, record_id)
        view = _view(session, object_type, record)
        made_here = session.scalars(
            select(Enrollment)
            .where(Enrollment.source_record_id == record_id)
            .order_by(Enrollment.id.desc())
            .limit(200)
        )
        return replace(view, enrollments=[copy_row(RecordEnrollment, e) for e in made_here])


def search_records(
    ctx: Context,
    type_name: str,
    query: str | None = None,
    *,
    properties: dict[str, str] | None = None,
    contact_id: int | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> tuple[TypeView, list[RecordRow]]:
    """Keyset pages by id; `limit` rows. `q` searches the name; properties match exactly."""
    with ctx.db.read() as session:
        object_type = find_type(session, type_name)
        statement = (
            select(Record).where(Record.type_id == object_type.id).order_by(Record.id).limit(limit)
        )
        if after_id is not None:
            statement = statement.where(Record.id > after_id)
        if query:
            statement = statement.where(func.lower(Record.name).like(f"%{query.strip().lower()}%"))
        for name, value in (properties or {}).items():
            statement = statement.where(Record.properties[name].as_string() == str(value))
        if contact_id is not None:
            statement = statement.join(Association, Association.record_id == Record.id).where(
                Association.contact_id == contact_id
            )
        return TypeView.of(object_type), [RecordRow.of(r) for r in session.scalars(statement)]


def _view(session: Session, object_type: ObjectType, record: Record) -> RecordView:
    associations = session.scalars(
        select(Association)
        .where(Association.record_id == record.id)
        .order_by(Association.is_primary.desc(), Association.id)
    )
    return RecordView(
        RecordRow.of(record),
        TypeView.of(object_type),
        [copy_row(AssociationRow, a) for a in associations],
    )


def _associated_ids(session: Session, record_id: int) -> list[int]:
    return list(
        session.scalars(select(Association.contact_id).where(Association.record_id == record_id))
    )


# -- associations -----------------------------------------------------------------------


def set_associations(
    session: Session, now, record: Record, wanted: list[AssociationIn]
) -> set[int]:
    """Adds these associations (an existing one may become primary); returns contact ids."""
    if sum(1 for a in wanted if a.primary) > 1:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "only one associated contact can be primary",
            {"field": "associations"},
        )
    ids = {a.contact_id for a in wanted}
    known = set(session.scalars(select(Contact.id).where(Contact.id.in_(ids))))
    missing = sorted(ids - known)
    if missing:
        raise CadenzaError(
            ErrorCode.CONTACT_NOT_FOUND,
            f"no contact with id {', '.join(map(str, missing))}",
            {"contact_ids": missing},
        )
    existing = {
        a.contact_id: a
        for a in session.scalars(select(Association).where(Association.record_id == record.id))
    }
    for item in wanted:
        if item.primary:
            for other in existing.values():
                if other.is_primary and other.contact_id != item.contact_id:
                    other.is_primary = False
            session.flush()
        link = existing.get(item.contact_id)
        if link is None:
            link = Association(
                record_id=record.id,
                contact_id=item.contact_id,
                is_primary=item.primary,
                created_at=now,
            )
            session.add(link)
            existing[item.contact_id] = link
        elif item.primary:
            link.is_primary = True
        session.flush()
    return ids


def associate(
    ctx: Context, actor_id: int | None, record_id: int, contact_id: int, *, primary: bool = False
) -> AssociationRow:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        record = session.get(Record, record_id, with_for_update=True)
        if record is None:
            raise CadenzaError(
                ErrorCode.NOT_FOUND, f"record {record_id} does not exist", {"id": record_id}
            )
        authorize(session, actor_id, Resource.RECORD, Action.UPDATE, [record.owner_id])
        set_associations(session, now, record, [AssociationIn(contact_id, primary)])
        membership.refresh(session, now, [contact_id])
        audit(
            session, ctx, actor_id, "association.create", "record", record_id,
            {"contact_id": contact_id, "primary": primary},
        )  # fmt: skip
        link = session.scalar(
            select(Association).where(
                Association.record_id == record_id, Association.contact_id == contact_id
            )
        )
        return copy_row(AssociationRow, link)


def dissociate(ctx: Context, actor_id: int | None, record_id: int, contact_id: int) -> None:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        link = session.scalar(
            select(Association).where(
                Association.record_id == record_id, Association.contact_id == contact_id
            )
        )
        if link is None:
            raise CadenzaError(
                ErrorCode.NOT_FOUND,
                f"contact {contact_id} is not associated with record {record_id}",
            )
        owner = session.get(Record, record_id).owner_id
        authorize(session, actor_id, Resource.RECORD, Action.UPDATE, [owner])
        session.delete(link)
        session.flush()
        membership.refresh(session, now, [contact_id])
        audit(
            session, ctx, actor_id, "association.delete", "record", record_id,
            {"contact_id": contact_id},
        )  # fmt: skip


def list_associations(
    ctx: Context,
    *,
    record_id: int | None = None,
    contact_id: int | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> list[tuple[AssociationRow, RecordRow, str]]:
    """Associations of a record or of a contact, each with its record and type name."""
    if record_id is None and contact_id is None:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "give record_id or contact_id", {"field": "record_id"}
        )
    with ctx.db.read() as session:
        statement = (
            select(Association, Record, ObjectType.name)
            .join(Record, Record.id == Association.record_id)
            .join(ObjectType, ObjectType.id == Record.type_id)
            .order_by(Association.id)
            .limit(limit)
        )
        if record_id is not None:
            statement = statement.where(Association.record_id == record_id)
        if contact_id is not None:
            statement = statement.where(Association.contact_id == contact_id)
        if after_id is not None:
            statement = statement.where(Association.id > after_id)
        return [
            (copy_row(AssociationRow, link), RecordRow.of(record), type_name)
            for link, record, type_name in session.execute(statement)
        ]


# -- enrolling from a record ------------------------------------------------------------


def contacts_for_enrollment(
    session: Session, type_name: str, record_id: int, chosen: list[int]
) -> tuple[Record | None, list[int]]:
    """The contacts an enrollment from this record is for, and the record (None for a
    contact). A record enrolls through its associated contacts: none → refused with
    `no_associated_contact`; several and none chosen → the rep is asked to choose."""
    if type_name == "contact":
        fetch(session, Contact, record_id)
        if chosen and chosen != [record_id]:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                "enrolling from a contact enrolls that contact: leave contacts out",
                {"field": "contacts"},
            )
        return None, [record_id]
    object_type = find_type(session, type_name)
    record = fetch_record(session, object_type, record_id)
    linked = [
        tuple(row)
        for row in session.execute(
            select(Association.contact_id, Contact.email, Association.is_primary)
            .join(Contact, Contact.id == Association.contact_id)
            .where(Association.record_id == record_id)
            .order_by(Association.is_primary.desc(), Association.contact_id)
        )
    ]
    if not linked:
        raise CadenzaError(
            ErrorCode.NO_ASSOCIATED_CONTACT,
            f"{object_type.name} {record_id} has no associated contact to enroll: "
            "associate one first",
            {"record_type": object_type.name, "record_id": record_id},
        )
    if chosen:
        return record, chosen
    if len(linked) > 1:
        raise CadenzaError(
            ErrorCode.ASSOCIATED_CONTACT_REQUIRED,
            f"{object_type.name} {record_id} has {len(linked)} associated contacts: "
            "choose which to enroll",
            {
                "contacts": [
                    {"contact_id": cid, "email": email, "primary": primary}
                    for cid, email, primary in linked
                ]
            },
        )
    return record, [linked[0][0]]


def associated_contact_ids(session: Session, record_id: int) -> set[int]:
    return set(_associated_ids(session, record_id))
