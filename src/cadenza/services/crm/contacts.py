"""Contacts: create, read, update, delete, search."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import ColumnElement, String, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from cadenza.domain.contact_fields import (
    check_property_count,
    clean_contact_input,
    email_key,
    normalize_email,
)
from cadenza.domain.enums import LIVE_ENROLLMENT_STATES
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import upkeep as counter_upkeep
from cadenza.services.crm import membership, suppressions
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import (
    Contact,
    EmailEvent,
    Enrollment,
    Message,
    StepRun,
    Task,
)


@dataclass(frozen=True)
class ContactView:
    """A contact as the web app and the CLI show one."""

    id: int
    email: str | None
    email_key: str | None
    firstname: str | None
    lastname: str | None
    company: str | None
    jobtitle: str | None
    phone: str | None
    timezone: str | None
    properties: dict[str, Any]
    owner_id: int | None
    bounced_at: datetime | None
    unsubscribed_at: datetime | None
    blocked: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Contact) -> ContactView:
        return copy_row(cls, row, properties=dict(row.properties or {}))


def _apply(contact: Contact, columns: dict, properties: dict) -> None:
    for key, value in columns.items():
        setattr(contact, key, value)
        if key == "email":
            contact.email_key = email_key(value) if value else None
    if properties:
        merged = {**(contact.properties or {}), **properties}
        kept = {k: v for k, v in merged.items() if v is not None}
        check_property_count(kept)  # the contact's total, not only this change's
        contact.properties = kept


def _duplicate(columns: dict) -> CadenzaError:
    return CadenzaError(
        ErrorCode.CONFLICT,
        f"a contact with email {columns.get('email')} already exists",
        {"field": "email"},
    )


def create_contact(ctx: Context, data: dict[str, Any], actor_id: int | None = None) -> ContactView:
    columns, properties = clean_contact_input(data)
    now = ctx.clock.now()
    try:
        with ctx.db.transaction() as session:
            if columns.get("email") and find_by_email(session, columns["email"]):
                raise _duplicate(columns)
            if columns.get("email"):
                suppressions.refuse_suppressed(ctx, session, columns["email"])
            contact = Contact(properties={}, created_at=now, updated_at=now, owner_id=actor_id)
            _apply(contact, columns, properties)
            session.add(contact)
            session.flush()
            membership.contact_saved(session, now, contact, None)
            record(session, ctx, actor_id, "contact.create", "contact", contact.id)
    except IntegrityError:
        raise _duplicate(columns) from None
    return ContactView.of(contact)


def find_by_email(session: Session, address: str) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.email_key == email_key(address)))


def contacts_by_email(session: Session, addresses: list[str]) -> dict[str, Contact]:
    """The contacts these addresses already belong to, by email key: one query for a
    whole import batch instead of one per row."""
    keys = list({email_key(a) for a in addresses})
    found = session.scalars(select(Contact).where(Contact.email_key.in_(keys)))
    return {c.email_key: c for c in found if c.email_key}


def upsert_contact(
    session: Session,
    ctx: Context,
    columns: dict,
    properties: dict,
    *,
    suppressed: set[str] | None = None,
    known: dict[str, Contact] | None = None,
) -> bool:
    """Creates or updates by email inside the caller's transaction; True when created.
    An erased contact's address raises `suppressed` before anything is written;
    `suppressed` is the caller's answer for a whole batch (suppressions.suppressed_among),
    else each new address is looked up. `known` is the batch's contacts_by_email (the
    contacts created here are added to it, so an address twice in a file updates the
    first); without it the contact is looked up by itself."""
    key = email_key(columns["email"])
    contact = known.get(key) if known is not None else find_by_email(session, columns["email"])
    created = contact is None
    if created:
        if suppressed is None:
            suppressions.refuse_suppressed(ctx, session, columns["email"])
        elif email_key(columns["email"]) in suppressed:
            raise suppressions.refusal()
    now = ctx.clock.now()
    before = None if created else membership.contact_fields(contact)
    if contact is None:
        contact = Contact(properties={}, created_at=now)
        session.add(contact)
        if known is not None:
            known[key] = contact
    _apply(contact, columns, properties)
    contact.updated_at = now
    membership.contact_saved(session, now, contact, before)
    return created


def get_contact(ctx: Context, contact_id: int) -> ContactView:
    with ctx.db.read() as session:
        return ContactView.of(fetch(session, Contact, contact_id))


def update_contact(
    ctx: Context, contact_id: int, data: dict[str, Any], actor_id: int | None = None
) -> ContactView:
    columns, properties = clean_contact_input(data)
    try:
        with ctx.db.transaction() as session:
            contact = fetch(session, Contact, contact_id)
            if columns.get("email"):
                other = find_by_email(session, columns["email"])
                if other is not None and other.id != contact_id:
                    raise _duplicate(columns)
                if contact.email_key != email_key(columns["email"]):
                    suppressions.refuse_suppressed(ctx, session, columns["email"])
            before = membership.contact_fields(contact)
            _apply(contact, columns, properties)
            contact.updated_at = ctx.clock.now()
            membership.contact_saved(session, contact.updated_at, contact, before)
            record(session, ctx, actor_id, "contact.update", "contact", contact_id)
    except IntegrityError:
        raise _duplicate(columns) from None
    return ContactView.of(contact)


def delete_contact(ctx: Context, contact_id: int, actor_id: int | None = None) -> None:
    """Erases the contact and its history (a right-to-be-forgotten delete).

    A contact still live in a sequence is refused: unenroll first, so that a worker
    never holds a step of a contact that no longer exists. What stays is what the
    erasure must not forget: an audit entry that names only the contact's id, and the
    keyed hash of its address (suppressions.py), so that no import brings it back.
    """
    with ctx.db.transaction() as session:
        contact = fetch(session, Contact, contact_id)
        authorize(session, actor_id, Resource.CONTACT, Action.DELETE)
        enrollment_ids = select(Enrollment.id).where(Enrollment.contact_id == contact_id)
        live = session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(
                Enrollment.contact_id == contact_id,
                Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
            )
        )
        if live:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                "the contact is enrolled in a sequence: unenroll it before deleting it",
            )
        # Its enrollments' figures go with their rows (what a recount would show). Its
        # enrollments and emails are locked first, as the paths that count a retry or
        # an open lock them: none changes between the count and the delete.
        session.scalars(
            select(Enrollment.id).where(Enrollment.contact_id == contact_id).with_for_update()
        ).all()
        session.scalars(
            select(Message.id).where(Message.contact_id == contact_id).with_for_update()
        ).all()
        counter_upkeep.erase(session, Enrollment.contact_id == contact_id)
        session.execute(delete(EmailEvent).where(EmailEvent.contact_id == contact_id))
        session.execute(delete(Task).where(Task.contact_id == contact_id))
        session.execute(delete(Message).where(Message.contact_id == contact_id))
        session.execute(delete(StepRun).where(StepRun.enrollment_id.in_(enrollment_ids)))
        session.execute(delete(Enrollment).where(Enrollment.contact_id == contact_id))
        if contact.email:
            suppressions.suppress(ctx, session, contact.email, contact_id)
        session.delete(contact)
        # No name, no address: the entry outlives the person it is about.
        data = {"erased": True, "suppressed": bool(contact.email)}
        record(session, ctx, actor_id, "contact.delete", "contact", contact_id, data)


class folded(FunctionElement[str]):
    """A column compared case-blind by LIKE: `lower(x)` on PostgreSQL, whose LIKE tells
    case apart; `x` itself on SQLite, whose LIKE already ignores the case of ASCII
    letters, which is all its lower() folds too (the same contacts match either way).
    On SQLite lower() cost more than the LIKE: a search's count read 50,000 contacts in
    30 ms with it and in 12.5 ms without (bench/large.py, docs/benchmarks.md)."""

    # Not a GenericFunction: one named "lower" would take over func.lower everywhere.
    type = String()
    name = "folded"
    inherit_cache = True


@compiles(folded)
def _folded(element: folded, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(folded, "sqlite")
def _folded_on_sqlite(element: folded, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


def search_condition(query: str) -> ColumnElement[bool]:
    """A contact whose address, first or last name or company holds `query`, whatever
    its case: the API's search and the contacts index's. PostgreSQL has statistics on
    these lower() expressions (migration 0027) to estimate how many contacts match."""
    pattern = f"%{query.strip().lower()}%"
    return or_(
        Contact.email_key.like(pattern),
        folded(Contact.firstname).like(pattern),
        folded(Contact.lastname).like(pattern),
        folded(Contact.company).like(pattern),
    )


@dataclass(frozen=True)
class ContactPage:
    results: list[ContactView]
    next_cursor: int | None


def search_contacts(
    ctx: Context,
    query: str | None = None,
    *,
    properties: dict[str, str] | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> ContactPage:
    """Keyset pagination by id: stable under inserts, cheap at any depth.

    `properties` match custom properties exactly, compared as text ({"plan": "pro"}).
    """
    if not 1 <= limit <= 500:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "limit must be between 1 and 500")
    statement = select(Contact).order_by(Contact.id).limit(limit + 1)
    if after_id is not None:
        statement = statement.where(Contact.id > after_id)
    if query:
        statement = statement.where(search_condition(query))
    for name, value in (properties or {}).items():
        statement = statement.where(Contact.properties[name].as_string() == str(value))
    with ctx.db.read() as session:
        rows = [ContactView.of(row) for row in session.scalars(statement)]
    more = len(rows) > limit
    rows = rows[:limit]
    return ContactPage(rows, rows[-1].id if more else None)


MAX_PASTED_EMAILS = 500


@dataclass
class PastedEmails:
    """What a pasted list of addresses came to: the contacts to enroll, in the order
    pasted (those found and, when asked, those created), and what could not be used."""

    contacts: list[ContactView] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # no contact, and none was to be made
    suppressed: list[str] = field(default_factory=list)  # an erased contact's: never made again
    invalid: list[str] = field(default_factory=list)  # not an email address


def resolve_emails(
    ctx: Context, text: str, *, create_unknown: bool, actor_id: int | None = None
) -> PastedEmails:
    """Addresses separated by commas, semicolons, spaces or lines (a "Name <a@b>" form
    too), each looked up by its normalised key; an unknown one becomes a new contact only
    when `create_unknown` says the user confirmed it, through `create_contact`."""
    words = _pasted_words(text or "")
    if len(words) > MAX_PASTED_EMAILS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"paste at most {MAX_PASTED_EMAILS} addresses at once; got {len(words)}",
        )
    outcome = PastedEmails()
    seen: set[str] = set()
    suppressions.prepare(ctx)  # the reads below then hash with no write of their own
    for word in words:
        try:
            address = normalize_email(word)
        except CadenzaError:
            outcome.invalid.append(word)
            continue
        if email_key(address) in seen:
            continue
        seen.add(email_key(address))
        with ctx.db.read() as session:
            found = find_by_email(session, address)
            contact = None if found is None else ContactView.of(found)
            erased = found is None and suppressions.find(ctx, session, address) is not None
        if erased:
            outcome.suppressed.append(address)
            continue
        if contact is None and create_unknown:
            contact = create_contact(ctx, {"email": address}, actor_id)
            outcome.created.append(address)
        if contact is None:
            outcome.unknown.append(address)
        else:
            outcome.contacts.append(contact)
    return outcome


def _pasted_words(text: str) -> list[str]:
    """Entries split on commas, semicolons and lines; an entry with <…> is one display
    form ("Ann Lee <ann@x.com>"), any other may hold several space-separated addresses."""
    words: list[str] = []
    for entry in re.split(r"[,;\n]+", text):
        entry = entry.strip()
        if not entry:
            continue
        if "<" in entry:
            words.append(parseaddr(entry)[1] or entry)
        else:
            words.extend(entry.split())
    return words
