"""Turns stored contacts and senders into the plain dicts templates read, and renders a
step with them: the one rendering that emails (delivery/compose.py), manual-email drafts
and task notes (enrollment/tasks.py) share."""

from __future__ import annotations

from typing import Any, Protocol

from cadenza.domain import signatures, templates
from cadenza.domain.contact_fields import CONTACT_FIELDS
from cadenza.domain.personalization import build_context
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.store.models import Contact, Enrollment, Mailbox, User


class ContactRecord(Protocol):
    """What templates read of a contact: a stored contact, or the `ContactView` an
    enrollment request reads (services/enrollment/candidates.py; this area sits below
    crm, so it names the fields rather than the class)."""

    @property
    def email(self) -> str | None: ...
    @property
    def firstname(self) -> str | None: ...
    @property
    def lastname(self) -> str | None: ...
    @property
    def company(self) -> str | None: ...
    @property
    def jobtitle(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def properties(self) -> dict[str, Any] | None: ...


def contact_values(contact: ContactRecord) -> dict[str, Any]:
    values = dict(contact.properties or {})
    values.update({field: getattr(contact, field) for field in CONTACT_FIELDS})
    values["fullname"] = " ".join(p for p in (contact.firstname, contact.lastname) if p) or None
    return values


def values_lacking(tokens: dict[str, Any], contact: ContactRecord | None) -> dict[str, Any]:
    """The token values a contact's own record does not already give: a value "for
    everyone" fills gaps, it does not overwrite a first name the contact has."""
    if contact is None or not tokens:
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
        # Always present, so a template with the token never lacks a value: the slot is
        # filled after rendering (domain/signatures.py), empty when the user has none.
        "signature": signatures.PLACEHOLDER,
        "meeting_link": user.meeting_link or None,
    }


def finish_text(text: str, user: User) -> str:
    """A rendered text (subject, task title or notes) with the signature as plain text
    (made only when the text has the slot: turning HTML into text is not free)."""
    if signatures.PLACEHOLDER not in text:
        return text
    return text.replace(signatures.PLACEHOLDER, signatures.signature_text(user.signature_html))


def render_step(
    enrollment: Enrollment,
    contact: Contact,
    user: User,
    mailbox: Mailbox,
    spec: StepSpec,
    settings: SequenceSettings | None = None,
) -> tuple[str, str]:
    """The step's subject and HTML body for this contact (raises on a missing token).
    `settings`: the enrollment's, when the caller has read them already."""
    context = build_context(
        contact_values(contact), sender_values(user, mailbox), enrollment.token_values or {}
    )
    subject_source = spec.subject
    if not subject_source and spec.thread_with_step:
        subject_source = enrollment.steps_snapshot[spec.thread_with_step - 1].get("subject")
    subject = finish_text(templates.render_subject(subject_source or "", context), user)
    body = templates.clean_html(templates.render(spec.body or "", context, html=True))
    body = signatures.fill(body, user.signature_html)
    if settings is None:
        settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
    if settings.append_signature and not signatures.uses_signature(spec.body, subject_source):
        body = signatures.appended(body, user.signature_html)
    return subject, body
