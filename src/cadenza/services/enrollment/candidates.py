"""What an enrollment request reads of its contacts: the contacts themselves, their live
enrollments, and the block list's patterns for their addresses.

A request enrolls up to 50 contacts (the API, a list job's batch, the web dialog), and
its dry run (the dialog's preview) is the API's busiest write-shaped request. Each read
here is one statement for all the contacts, compiled once and run on the driver's
cursor (store/prepared.py), its rows read as plain values (the contacts as
`ContactView`s): loading 50 ORM objects cost more than reading the rows (bench/api.py,
docs/benchmarks.md, the twentieth session). The ids go in as bound
rows (store/bound_rows.py), so the SQL is the same for any number of contacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    String,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from cadenza.domain.eligibility import LiveEnrollment
from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, Exclusivity
from cadenza.domain.errors import CadenzaError
from cadenza.domain.ids import is_row_id
from cadenza.domain.sequence_settings import EnrollmentRules
from cadenza.services.crm.contacts import ContactView
from cadenza.store.bound_rows import BoundRows
from cadenza.store.models import BlockedAddress, Contact, Enrollment, Mailbox, Sequence
from cadenza.store.prepared import Prepared, Read


@dataclass(frozen=True)
class Live:
    """A live enrollment of a contact, and who may end it (its enroller, the mailbox's owner)."""

    view: LiveEnrollment
    owners: tuple[int, int]


_IDS = BoundRows("contact_ids", id=Integer())


# A request's contacts are read as the app shows a contact (`ContactView`), its columns
# in the view's order.
_FIELDS = tuple(f.name for f in fields(ContactView))


def _contacts(locked: bool) -> Prepared:
    def build(dialect_name: str) -> Executable:
        query = (
            select(*(getattr(Contact, name) for name in _FIELDS))
            .where(Contact.id.in_(select(_IDS.table(dialect_name).c.id)))
            .order_by(Contact.id)
        )
        return query.with_for_update() if locked else query

    return Prepared(build=build)


_CONTACTS = _contacts(locked=False)
_LOCKED_CONTACTS = _contacts(locked=True)  # in id order: two requests never deadlock
_LIVE = Prepared(
    build=lambda dialect_name: (
        select(
            Enrollment.id,
            Enrollment.contact_id,
            Enrollment.sequence_id,
            Sequence.name,
            Sequence.settings,
            Enrollment.enrolled_by_id,
            Mailbox.owner_id,
        )
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
        .where(
            Enrollment.contact_id.in_(select(_IDS.table(dialect_name).c.id)),
            or_(*(Enrollment.state == state for state in LIVE_ENROLLMENT_STATES)),
        )
        .order_by(Enrollment.id)
    )
)


def _domain_key(dialect_name: str) -> ColumnElement[str]:
    """A contact's `email_key` as the block list names its whole domain: `@` and what
    follows the last `@` (the whole key if it has none), as `_keys` says, in the
    dialect's own SQL. SQLite has no regular expressions: the text up to the last `@`
    is what `rtrim` leaves when told to strip every character but `@`."""
    key = Contact.email_key
    if dialect_name == "postgresql":
        after_last_at = func.regexp_replace(key, literal_column("'^.*@'"), literal_column("''"))
    else:
        after_last_at = func.replace(key, func.rtrim(key, func.replace(key, "@", "")), "")
    return literal_column("'@'", String) + after_last_at


def _blocked(dialect_name: str) -> Executable:
    """The block list's entries for the addresses of the contacts with the bound ids:
    read by the ids, not the addresses, so that it needs nothing read before it and
    runs with the request's other reads (store/prepared.py `rows_together`)."""
    ids = select(_IDS.table(dialect_name).c.id)
    addresses = select(Contact.email_key).where(Contact.id.in_(ids))
    domains = select(_domain_key(dialect_name)).where(Contact.id.in_(ids))
    keys: CompoundSelect[tuple[str | None]] = union_all(addresses, domains)
    return select(BlockedAddress.pattern).where(BlockedAddress.pattern.in_(keys))


_BLOCKED = Prepared(build=_blocked)


def row_ids(ids: Iterable[Any]) -> list[int]:
    """The ids among `ids` that a row can have (domain/ids.py), once each and in order:
    what cannot be a row's id is no contact's."""
    return sorted({i for i in ids if is_row_id(i)})


def _by_ids(prepared: Prepared, connection: Connection, ids: list[int]) -> Read:
    return prepared, _IDS.bind([(i,) for i in ids], connection.dialect)


def contacts_read(connection: Connection, ids: list[int], *, lock: bool) -> Read:
    """The read of the contacts among `ids` (`row_ids`), `lock`ed (PostgreSQL's row
    locks, in id order: two requests never deadlock) when they are to be enrolled."""
    return _by_ids(_LOCKED_CONTACTS if lock else _CONTACTS, connection, ids)


def contacts_from(rows: list[Any]) -> dict[int, ContactView]:
    """`contacts_read`'s rows, as the contacts by id."""
    return {row[0]: _view(row) for row in rows}


def _view(row: Any) -> ContactView:
    values = dict(zip(_FIELDS, row, strict=True))
    values["properties"] = values["properties"] or {}
    return ContactView(**values)


def live_read(connection: Connection, ids: list[int]) -> Read:
    """The read of the live enrollments of the contacts with these ids (`row_ids`)."""
    return _by_ids(_LIVE, connection, ids)


def live_from(rows: list[Any], default_exclusivity: Exclusivity) -> dict[int, list[Live]]:
    """`live_read`'s rows, as each contact's live enrollments, with the exclusivity of
    their sequences."""
    live: dict[int, list[Live]] = {}
    for enrollment_id, contact_id, sequence_id, name, settings, enroller, owner in rows:
        exclusivity = own_rules(settings).exclusivity or default_exclusivity
        view = LiveEnrollment(enrollment_id, sequence_id, name, exclusivity)
        live.setdefault(contact_id, []).append(Live(view, (enroller, owner)))
    return live


def own_rules(settings: dict[str, Any] | None) -> EnrollmentRules:
    """A sequence's own enrollment rules, as stored (validated when saved)."""
    try:
        return EnrollmentRules.from_dict((settings or {}).get("enrollment_rules"))
    except CadenzaError:
        return EnrollmentRules()


def live_enrollments(
    session: Session, contact_ids: Iterable[int], default_exclusivity: Exclusivity
) -> dict[int, list[Live]]:
    """Each contact's live enrollments, with the exclusivity of their sequences."""
    ids = row_ids(contact_ids)
    if not ids:
        return {}
    connection = session.connection()
    prepared, params = live_read(connection, ids)
    return live_from(prepared.rows(connection, params), default_exclusivity)


def _keys(email_key: str) -> tuple[str, str]:
    """What the block list may hold for an address: itself, or its whole domain."""
    return email_key, "@" + email_key.rpartition("@")[2]


def blocked_read(connection: Connection, ids: list[int]) -> Read:
    """The read of the block list's entries that match the addresses of the contacts
    with these ids (`row_ids`): an address, or its whole domain."""
    return _by_ids(_BLOCKED, connection, ids)


def blocked_patterns(session: Session, contact_ids: Iterable[int]) -> set[str]:
    """The block list's entries that match any of these contacts' addresses."""
    ids = row_ids(contact_ids)
    if not ids:
        return set()
    connection = session.connection()
    prepared, params = blocked_read(connection, ids)
    return blocked_from(prepared.rows(connection, params))


def blocked_from(rows: list[Any]) -> set[str]:
    """`blocked_read`'s rows, as the entries."""
    return {pattern for (pattern,) in rows}


def is_blocked(contact: ContactView | Contact, patterns: set[str]) -> bool:
    if contact.blocked:
        return True
    if not contact.email_key:
        return False
    return not patterns.isdisjoint(_keys(contact.email_key))
