"""Active list membership, kept current in the transaction of every change.

Design (docs/records.md): whenever a contact, a record or an association changes, the
service making the change calls `refresh` for the contacts it touched, inside its own
transaction. `refresh` evaluates every active list's filter for those contacts only
(pure Python, domain/filters.py), writes the differences to `list_members` and records
`list_added` / `list_removed` automation events. So membership is never stale, costs
what changed (not the size of the lists), and a rolled-back change leaves no trace.
Defining or changing a list's filter evaluates all contacts once, in batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from cadenza.domain import filters
from cadenza.domain.enums import AutomationEventType, ListKind
from cadenza.services.access import acting_user_id
from cadenza.services.events_out import triggers
from cadenza.store.models import (
    Association,
    Contact,
    ContactList,
    ListMember,
    ObjectType,
    Record,
)

BATCH = 1000


def contact_fields(contact: Contact) -> dict[str, Any]:
    """What a filter sees of a contact: its columns, then its custom properties."""
    values: dict[str, Any] = dict(contact.properties or {})
    for name in filters.CONTACT_FIELDS:
        values[name] = getattr(contact, name)
    return values


def record_fields(record: Record) -> dict[str, Any]:
    values: dict[str, Any] = dict(record.properties or {})
    for name in filters.RECORD_FIELDS:
        values[name] = getattr(record, name)
    return values


def facts_for(
    session: Session, contacts: list[Contact], object_types: set[str]
) -> dict[int, dict[str, Any]]:
    """Each contact's fields and, for the record types asked for, its associated records."""
    facts = {c.id: {"contact": contact_fields(c), "records": {}} for c in contacts}
    if object_types and facts:
        rows = session.execute(
            select(Association.contact_id, ObjectType.name, Record)
            .join(Record, Record.id == Association.record_id)
            .join(ObjectType, ObjectType.id == Record.type_id)
            .where(Association.contact_id.in_(list(facts)), ObjectType.name.in_(object_types))
        )
        for contact_id, type_name, record in rows:
            facts[contact_id]["records"].setdefault(type_name, []).append(record_fields(record))
    return facts


def refresh(session: Session, now: datetime, contact_ids: Iterable[int]) -> None:
    """Re-evaluates the active lists for these contacts (a change touched them)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return
    lists = list(session.scalars(select(ContactList).where(ContactList.kind == ListKind.ACTIVE)))
    if not lists:
        return
    for start in range(0, len(ids), BATCH):
        _evaluate(session, now, lists, ids[start : start + BATCH])


def rebuild(session: Session, now: datetime, contact_list: ContactList) -> None:
    """Evaluates one active list against every contact (a new or changed filter)."""
    after = 0
    while True:
        ids = list(
            session.scalars(
                select(Contact.id).where(Contact.id > after).order_by(Contact.id).limit(BATCH)
            )
        )
        if not ids:
            return
        _evaluate(session, now, [contact_list], ids)
        after = ids[-1]


def _evaluate(session: Session, now: datetime, lists: list[ContactList], ids: list[int]) -> None:
    types = set().union(*(filters.object_types_used(lst.filters) for lst in lists))
    contacts = list(session.scalars(select(Contact).where(Contact.id.in_(ids))))
    facts = facts_for(session, contacts, types)
    current = {
        tuple(row)
        for row in session.execute(
            select(ListMember.list_id, ListMember.contact_id).where(
                ListMember.list_id.in_([lst.id for lst in lists]),
                ListMember.contact_id.in_(ids),
            )
        )
    }
    wanted = {
        (lst.id, contact_id)
        for lst in lists
        for contact_id, fact in facts.items()
        if lst.filters and filters.matches(lst.filters, fact, now)
    }
    apply_changes(session, now, wanted - current, current - wanted)


def apply_changes(
    session: Session,
    now: datetime,
    added: set[tuple[int, int]],
    removed: set[tuple[int, int]],
) -> None:
    """Writes membership changes and their automation events, in the caller's transaction."""
    if added:
        session.execute(
            insert(ListMember),
            [{"list_id": lid, "contact_id": cid, "added_at": now} for lid, cid in sorted(added)],
        )
    for list_id, contact_id in sorted(removed):
        session.execute(
            delete(ListMember).where(
                ListMember.list_id == list_id, ListMember.contact_id == contact_id
            )
        )
    # Who put them there: a rule acting as someone else must not take it as their word.
    by = {"by": actor} if (actor := acting_user_id(session)) is not None else {}
    triggers.record_many(
        session,
        now,
        [
            (AutomationEventType.LIST_ADDED, cid, {"list_id": lid, **by})
            for lid, cid in sorted(added)
        ]
        + [
            (AutomationEventType.LIST_REMOVED, cid, {"list_id": lid, **by})
            for lid, cid in sorted(removed)
        ],
    )


def contact_saved(
    session: Session, now: datetime, contact: Contact, before: dict[str, Any] | None
) -> None:
    """A contact was created (`before` None) or changed: its automation events, then its
    active lists. Called by services/crm/contacts.py in the transaction of the change."""
    if not _watched(session):
        return  # no rule listens and no active list exists: nothing to do (imports)
    session.flush()
    after = contact_fields(contact)
    if before is None:
        events = [(AutomationEventType.CONTACT_CREATED, contact.id, {})]
    else:
        events = [
            (
                AutomationEventType.PROPERTY_CHANGED,
                contact.id,
                {"property": name, "old": old, "new": new},
            )
            for name in sorted(set(before) | set(after))
            if name != "updated_at"
            and (old := _plain(before.get(name))) != (new := _plain(after.get(name)))
        ]
    triggers.record_many(session, now, events)
    refresh(session, now, [contact.id])


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


WATCH_KEY = "cadenza.contact_watch"


def _watched(session: Session) -> bool:
    """Whether contact changes matter to anything, asked once per transaction: a CSV
    import saves thousands of contacts in one."""
    if WATCH_KEY not in session.info:
        listened = triggers.listened_types(session) & {
            AutomationEventType.CONTACT_CREATED,
            AutomationEventType.PROPERTY_CHANGED,
        }
        active = session.scalar(
            select(ContactList.id).where(ContactList.kind == ListKind.ACTIVE).limit(1)
        )
        session.info[WATCH_KEY] = bool(listened) or active is not None
    return session.info[WATCH_KEY]
