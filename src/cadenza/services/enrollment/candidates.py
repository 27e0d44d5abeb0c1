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

from sqlalchemy import Integer, String, or_, select
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
from cadenza.store.prepared import Prepared


@dataclass(frozen=True)
class Live:
    """A live enrollment of a contact, and who may end it (its enroller, the mailbox's owner)."""

    view: LiveEnrollment
    owners: tuple[int, int]


_IDS = BoundRows("contact_ids", id=Integer())
_PATTERNS = BoundRows("patterns", pattern=String())


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
_BLOCKED = Prepared(
    build=lambda dialect_name: select(BlockedAddress.pattern).where(
        BlockedAddress.pattern.in_(select(_PATTERNS.table(dialect_name).c.pattern))
    )
)


def candidates(session: Session, ids: Iterable[Any], *, lock: bool) -> dict[int, ContactView]:
    """The contacts among `ids` that exist, by id (what cannot be a row's id is no
    contact's: domain/ids.py); `lock`ed (PostgreSQL's row locks) when they are to be enrolled."""
    wanted = sorted({i for i in ids if is_row_id(i)})
    if not wanted:
        return {}
    connection = session.connection()
    read = _LOCKED_CONTACTS if lock else _CONTACTS
    rows = read.rows(connection, _IDS.bind([(i,) for i in wanted], connection.dialect))
    return {row[0]: _view(row) for row in rows}


def _view(row: Any) -> ContactView:
    values = dict(zip(_FIELDS, row, strict=True))
    values["properties"] = values["properties"] or {}
    return ContactView(**values)


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
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    connection = session.connection()
    rows = _LIVE.rows(connection, _IDS.bind([(i,) for i in ids], connection.dialect))
    live: dict[int, list[Live]] = {}
    for enrollment_id, contact_id, sequence_id, name, settings, enroller, owner in rows:
        exclusivity = own_rules(settings).exclusivity or default_exclusivity
        view = LiveEnrollment(enrollment_id, sequence_id, name, exclusivity)
        live.setdefault(contact_id, []).append(Live(view, (enroller, owner)))
    return live


def _keys(email_key: str) -> tuple[str, str]:
    """What the block list may hold for an address: itself, or its whole domain."""
    return email_key, "@" + email_key.rpartition("@")[2]


def blocked_patterns(session: Session, contacts: Iterable[ContactView | Contact]) -> set[str]:
    """The block list's entries that match any of these contacts' addresses."""
    keys = sorted({key for c in contacts if c.email_key for key in _keys(c.email_key)})
    if not keys:
        return set()
    connection = session.connection()
    rows = _BLOCKED.rows(connection, _PATTERNS.bind([(k,) for k in keys], connection.dialect))
    return {pattern for (pattern,) in rows}


def is_blocked(contact: ContactView | Contact, patterns: set[str]) -> bool:
    if contact.blocked:
        return True
    if not contact.email_key:
        return False
    return not patterns.isdisjoint(_keys(contact.email_key))
