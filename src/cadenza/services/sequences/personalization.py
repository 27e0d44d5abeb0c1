"""Turns stored contacts and senders into the plain dicts templates read."""

from __future__ import annotations

from typing import Any

from cadenza.domain.contact_fields import CONTACT_FIELDS
from cadenza.store.models import Contact, Mailbox, User


def contact_values(contact: Contact) -> dict[str, Any]:
    values = dict(contact.properties or {})
    values.update({field: getattr(contact, field) for field in CONTACT_FIELDS})
    values["fullname"] = " ".join(p for p in (contact.firstname, contact.lastname) if p) or None
    return values


def values_lacking(tokens: dict[str, Any], contact: Contact | None) -> dict[str, Any]:
    """The token values a contact's own record does not already give: a value "for
    everyone" fills gaps, it does not overwrite a first name the contact has."""
    if contact is None:
        return dict(tokens)
    values = contact_values(contact)
    return {
        name: value
        for name, value in tokens.items()
        if not name.startswith("contact.")
        or values.get(name.removeprefix("contact.")) in (None, "")
    }


def sender_values(user: User, mailbox: Mailbox) -> dict[str, Any]:
    return {
        "firstname": user.firstname or None,
        "lastname": user.lastname or None,
        "fullname": " ".join(p for p in (user.firstname, user.lastname) if p) or None,
        "email": mailbox.from_email,
        "name": mailbox.from_name or None,
    }
