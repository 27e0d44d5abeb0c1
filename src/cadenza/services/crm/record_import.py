"""CSV import of records of one type, with association columns.

The file's shape is checked first (the same CSV rules as contact imports); then each
row is written in its own SAVEPOINT, in batches of BATCH_SIZE rows per transaction, and
each bad row is reported with its line. Columns:

    name                    the record's name (required)
    <property>              any property of the type (typed, checked)
    contact_email           an associated contact, by email
    contact_emails          several, separated by ';'
    primary_contact_email   the primary associated contact

Re-importing updates instead of duplicating: a row finds its record by the key column
(`name` by default, or a text property such as `domain`), so an interrupted import can
simply be run again. Associations are added, never removed, by a re-import. Contacts
must exist already (import them first): an unknown email is that row's error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain import record_types
from cadenza.domain.contact_fields import email_key
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.crm import membership
from cadenza.services.crm.contact_import import ImportReport, RowError, parse_csv
from cadenza.services.crm.records import (
    AssociationIn,
    associated_contact_ids,
    find_type,
    set_associations,
    set_properties,
)
from cadenza.store.models import Contact, ObjectType, Record

BATCH_SIZE = 500
ASSOCIATION_COLUMNS = {
    "contactemail": "contact_email",
    "contactemails": "contact_emails",
    "primarycontactemail": "primary_contact_email",
}


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    key: str
    properties: dict
    emails: list[str]
    primary: str | None


def _fold(header: str) -> str:
    return "".join(ch for ch in header.strip().lower() if ch not in " _-")


def _columns_for(object_type: ObjectType, key: str) -> Callable[[list[str]], list[str]]:
    names = {p["name"] for p in object_type.properties}

    def columns_of(header: list[str]) -> list[str]:
        columns = []
        for cell in header:
            folded = _fold(cell)
            column = ASSOCIATION_COLUMNS.get(folded) or ("name" if folded == "name" else None)
            columns.append(column or cell.strip())
        if "name" not in columns:
            raise CadenzaError(
                ErrorCode.MISSING_HEADER,
                "the first line must be a header with a 'name' column",
                {"found": header},
            )
        unknown = [c for c in columns if c not in names | {"name", *ASSOCIATION_COLUMNS.values()}]
        if unknown:
            raise CadenzaError(
                ErrorCode.MISSING_HEADER,
                f"{object_type.plural} have no property {', '.join(map(repr, unknown))} "
                f"(properties: {', '.join(sorted(names)) or 'none'}; association columns: "
                "contact_email, contact_emails, primary_contact_email)",
                {"unknown": unknown},
            )
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise CadenzaError(
                ErrorCode.MISSING_HEADER, f"the header names {', '.join(duplicates)} twice"
            )
        if key not in columns:
            raise CadenzaError(
                ErrorCode.MISSING_HEADER, f"the key column {key!r} is not in the header"
            )
        return columns

    return columns_of


def _check_key(object_type: ObjectType, key: str) -> None:
    types = {p["name"]: p["type"] for p in object_type.properties}
    if key != "name" and types.get(key) not in ("string", "enum"):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"the key must be 'name' or a text property of {object_type.plural}",
            {"field": "key"},
        )


def _row(object_type: ObjectType, key: str, line: int, values: dict) -> _Row | RowError:
    name = (values.pop("name", "") or "").strip()
    if not name:
        return RowError(line, str(ErrorCode.VALIDATION_ERROR), "no name")
    emails = [e.strip() for e in (values.pop("contact_emails", "") or "").split(";")]
    emails.append((values.pop("contact_email", "") or "").strip())
    primary = (values.pop("primary_contact_email", "") or "").strip() or None
    try:
        properties = record_types.check_values(object_type.properties, values)
    except CadenzaError as exc:
        return RowError(line, str(exc.code), exc.message)
    key_value = name if key == "name" else properties.get(key)
    if not key_value:
        return RowError(line, str(ErrorCode.VALIDATION_ERROR), f"no value in key column {key!r}")
    wanted = [e for e in emails if e] + ([primary] if primary else [])
    return _Row(line, name, str(key_value), properties, list(dict.fromkeys(wanted)), primary)


def import_records(
    ctx: Context,
    type_name: str,
    data: bytes,
    *,
    key: str = "name",
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    with ctx.db.read() as session:
        object_type = find_type(session, type_name)
    _check_key(object_type, key)
    parsed = parse_csv(ctx, data, _columns_for(object_type, key))
    report = ImportReport(rows=len(parsed))
    good: list[_Row] = []
    for line, values in parsed:
        row = values if isinstance(values, RowError) else _row(object_type, key, line, values)
        (report.errors if isinstance(row, RowError) else good).append(row)
    done = len(report.errors)
    for start in range(0, len(good), BATCH_SIZE):
        batch = good[start : start + BATCH_SIZE]
        now = ctx.clock.now()
        with ctx.db.transaction() as session:
            object_type = find_type(session, type_name)
            touched: set[int] = set()
            for row in batch:
                try:
                    with session.begin_nested():
                        created, contacts = _write(session, object_type, key, row, now)
                except CadenzaError as exc:
                    report.errors.append(RowError(row.line, str(exc.code), exc.message))
                    continue
                touched |= contacts
                report.created += created
                report.updated += not created
            membership.refresh(session, now, touched)
        done += len(batch)
        if on_progress:
            on_progress(done, report.rows)
    report.errors.sort(key=lambda e: e.line)
    return report


def _write(
    session: Session, object_type: ObjectType, key: str, row: _Row, now
) -> tuple[bool, set[int]]:
    contacts = _contacts_by_email(session, row)
    query = select(Record).where(Record.type_id == object_type.id)
    if key == "name":
        query = query.where(Record.name == row.key)
    else:
        query = query.where(Record.properties[key].as_string() == row.key)
    record = session.scalars(query.order_by(Record.id).limit(1)).first()
    created = record is None
    if record is None:
        record = Record(type_id=object_type.id, properties={}, created_at=now)
        session.add(record)
    record.name = row.name
    record.updated_at = now
    set_properties(record, object_type, row.properties)
    session.flush()
    links = [AssociationIn(cid, primary=email == row.primary) for email, cid in contacts.items()]
    set_associations(session, now, record, links)
    return created, {*contacts.values(), *associated_contact_ids(session, record.id)}


def _contacts_by_email(session: Session, row: _Row) -> dict[str, int]:
    keys = {address: email_key(address) for address in row.emails}
    found = dict(
        session.execute(
            select(Contact.email_key, Contact.id).where(Contact.email_key.in_(keys.values()))
        ).all()
    )
    missing = [a for a, k in keys.items() if k not in found]
    if missing:
        raise CadenzaError(
            ErrorCode.CONTACT_NOT_FOUND,
            f"no contact with email {', '.join(missing)}: import the contacts first",
        )
    return {a: found[k] for a, k in keys.items()}
