"""The enroll dialog (DESIGN §2): options for everyone, per-contact edits, a dry run first.

The dialog is one form. Every change re-posts it to `/enroll/check`, which runs the
enrollment service as a dry run and answers with who can be enrolled, who cannot and
why, the tokens that have no value (in red, each with "Update all"), and the button.
`/enroll` posts the same form for real and answers with the result per contact.
Field names:

    sequence, contact (repeated), start_step, timezone, send (now|later), send_date,
    send_time, mailbox, follow_up_days, holiday_country, window_start, window_end,
    thread_follow_ups, task_reminders, token:<contact.name> (a value for everyone),
    edit:<contact id>:<step>:<field> (one contact's text of one step),
    record_type, record_id (enrolling from a company, deal, ticket or custom record),
    override_rules (repeated contact ids: enroll although an enrollment rule refuses;
    offered in the check only to users the policy lets override)

Opened from a record (`?record_type=company&record_id=7`), the dialog enrolls through
the record's associated contacts: with none it says so (`no_associated_contact`), with
several and none chosen it asks which (the service would answer
`associated_contact_required`), and the enrollment remembers the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData

from cadenza.domain import policy
from cadenza.domain.enums import EnrollWarningCode, FollowUpDays
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import is_row_id, row_id_of, whole_number
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import EDITABLE_FIELDS, StepSpec
from cadenza.services.access import authorize_enrolling
from cadenza.services.accounts import mailboxes
from cadenza.services.accounts.users import UserView
from cadenza.services.context import Context
from cadenza.services.crm import contact_index, lists, records
from cadenza.services.crm.contacts import ContactView
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.services.enrollment.enroll import (
    ContactRequest,
    ContactResult,
    EnrollOptions,
    EnrollRequest,
    enroll_in_batches,
)
from cadenza.services.sequences.catalog import get_sequence, list_sequences, step_specs
from cadenza.services.sequences.preview import headline_context, step_headlines
from cadenza.web.auth import Ctx
from cadenza.web.ui.forms import FormError, settings_from_form
from cadenza.web.ui.rendering import person_name, render
from cadenza.web.ui.session import PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

# A selection may span pages of the contacts index ("select all N matching" too): up to
# this many go to the dialog, and are enrolled in batches of the bulk limit.
MAX_CONTACTS_IN_URL = 500
# Each contact brings its own fields (its id and each step's editable text), past the
# form parser's default of 1000 fields for a few hundred contacts.
MAX_FORM_FIELDS = 40_000

# Which form field a whole-request refusal belongs next to.
_FIELD_OF_CODE = {
    ErrorCode.INVALID_TIMEZONE: "timezone",
    ErrorCode.SEND_AT_IN_PAST: "send",
    ErrorCode.INVALID_START_STEP: "start_step",
    ErrorCode.MAILBOX_NOT_FOUND: "mailbox",
    ErrorCode.MAILBOX_REQUIRED: "mailbox",
    ErrorCode.MAILBOX_NOT_YOURS: "mailbox",
    ErrorCode.MAILBOX_DISCONNECTED: "mailbox",
    ErrorCode.WARNINGS_NOT_CONFIRMED: "mailbox",
    ErrorCode.SEQUENCE_NOT_FOUND: "sequence",
    ErrorCode.SEQUENCE_HAS_NO_STEPS: "sequence",
}
# Warnings the dialog asks to confirm ("Enroll even though…"); the others are per contact.
CONFIRMED_WARNINGS = (EnrollWarningCode.REPLIES_NOT_DETECTED,)
FIELDS = ("sequence", "start_step", "timezone", "send", "mailbox", "settings", "general")


def _int(value: Any, field: str, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise FormError(field, f"choose {what}") from None
    if not is_row_id(number):
        raise FormError(field, f"choose {what}")
    return number


@dataclass
class DialogInput:
    """The form, read and checked: what the service needs plus what the page shows again."""

    sequence_id: int
    contact_ids: list[int]
    request: EnrollRequest
    token_values: dict[str, str] = field(default_factory=dict)


def _send_at(form: FormData) -> datetime | None:
    if form.get("send", "now") != "later":
        return None
    try:
        day = date.fromisoformat(str(form.get("send_date", "")))
        moment = time.fromisoformat(str(form.get("send_time", "")))
    except ValueError:
        raise FormError("send", "give the date and time to send the first step") from None
    return datetime.combine(day, moment)  # naive: that time in each enrollment's zone


def _edits(form: FormData, specs: list[StepSpec], contact_id: int) -> dict[str, dict[str, str]]:
    """Only text that differs from the sequence's: an untouched step stays the template."""
    by_position = {s.position: s for s in specs}
    edits: dict[str, dict[str, str]] = {}
    prefix = f"edit:{contact_id}:"
    for key, value in form.multi_items():
        if not key.startswith(prefix):
            continue
        position_text, _, name = key[len(prefix) :].partition(":")
        position = whole_number(position_text)
        spec = by_position.get(position) if position is not None else None
        if spec is None or name not in EDITABLE_FIELDS:
            continue
        if str(value) != (getattr(spec, name) or ""):
            edits.setdefault(str(spec.position), {})[name] = str(value)
    return edits


def read_tokens(form: Any) -> dict[str, str]:
    """`token:<name>` fields: values for everyone, used where a contact has none."""
    return {
        key.removeprefix("token:"): str(value).strip()
        for key, value in form.multi_items()
        if key.startswith("token:") and str(value).strip()
    }


def chosen_contacts(form: FormData) -> list[str]:
    """The dialog's contacts, or just one of them when its own panel's button was used."""
    asked = [str(v) for v in form.getlist("contact")]
    only = str(form.get("only", ""))
    if not only:
        return asked
    if only not in asked:
        raise FormError("general", "that contact is not part of this enrollment")
    return [only]


def read_options(form: Any) -> EnrollOptions:
    """The choices every contact shares, as the service's one `EnrollOptions`: the
    contacts' dialog and a whole list's read them alike."""
    zone = str(form.get("timezone", "")).strip()
    mailbox = str(form.get("mailbox", ""))
    return EnrollOptions(
        mailbox_id=_int(mailbox, "mailbox", "a mailbox") if mailbox else None,
        start_step=_int(form.get("start_step", "1"), "start_step", "a step"),
        timezone=zone or None,
        send_at=_send_at(form),
        settings=settings_from_form(form),
        token_values=read_tokens(form),
        # The dialog's "enroll even though…" box: unticked, a warning refuses the enroll.
        confirmed_warnings=bool(form.get("confirm_warnings")),
    )


def read_form(
    form: FormData, user: UserView, specs: list[StepSpec], *, dry_run: bool
) -> DialogInput:
    sequence_id = _int(form.get("sequence", ""), "sequence", "a sequence")
    contact_ids = [_int(v, "general", "contacts") for v in chosen_contacts(form)]
    if not contact_ids:
        raise FormError("general", "every contact was removed: choose contacts to enroll")
    options = read_options(form)
    request = options.request(
        sequence_id,
        user.id,
        [ContactRequest(cid, step_edits=_edits(form, specs, cid)) for cid in contact_ids],
        dry_run=dry_run,
    )
    request.record_type, request.record_id = read_record(form)
    request.override_rules = [
        _int(v, "general", "contacts to override for")
        for v in form.getlist("override_rules")
        if str(v) in {str(c) for c in contact_ids}
    ]
    return DialogInput(sequence_id, contact_ids, request, options.token_values)


def read_sequence_id(form: Any) -> int:
    return _int(form.get("sequence", ""), "sequence", "a sequence")


def read_list(form: Any) -> int | None:
    """The list whose members are all enrolled (`whole_list`), when the dialog is for one.
    (Not `list`: the contacts index's selection form has a `list` field of its own.)"""
    value = str(form.get("whole_list") or "").strip()
    return _int(value, "general", "a list") if value else None


def read_record(form: Any) -> tuple[str | None, int | None]:
    """The record the dialog was opened from, if any (a query string or the form)."""
    record_type = str(form.get("record_type") or "").strip()
    if not record_type:
        return None, None
    if len(record_type) > 64:
        raise FormError("general", "unknown record type")
    return record_type, _int(form.get("record_id", ""), "general", "a record")


@dataclass
class Outcome:
    contacts: list[ContactView]
    results: dict[int, ContactResult]
    errors: dict[str, str]
    missing: dict[str, list[str]]  # token -> names of the contacts that lack it
    tokens: dict[str, str]
    may_override: bool = False  # the enrollment rules, per contact (policy)
    overrides: set[int] = field(default_factory=set)  # the contacts ticked for it

    @property
    def enrollable(self) -> int:
        return sum(1 for r in self.results.values() if r.ok)


def _run(ctx: Context, form: FormData, user: UserView, *, dry_run: bool) -> Outcome:
    errors: dict[str, str] = {}
    contacts: list[ContactView] = []
    results: dict[int, ContactResult] = {}
    tokens: dict[str, str] = {}
    overrides: set[int] = set()
    try:
        sequence_id = _int(form.get("sequence", ""), "sequence", "a sequence")
        specs = step_specs(get_sequence(ctx, sequence_id, actor_id=user.id))
        list_id = read_list(form)
        if list_id is not None:  # a whole list: its first batch is the dry run's sample
            sample = list_enrollment.first_batch_ids(ctx, list_id)
            contacts = contact_index.get_contacts(ctx, sample)
            options = read_options(form)
            tokens = options.token_values
            chosen = [ContactRequest(c.id) for c in contacts]
            request = options.request(sequence_id, user.id, chosen, dry_run=True)
        else:
            asked = chosen_contacts(form)
            contacts = contact_index.get_contacts(ctx, _contact_ids(asked))
            dialog = read_form(form, user, specs, dry_run=dry_run)
            tokens = dialog.token_values
            request = dialog.request
            overrides = set(request.override_rules)
        results = {r.contact_id: r for r in enroll_in_batches(ctx, request)}
    except (FormError, CadenzaError) as exc:
        errors = field_errors(exc)
    names = {c.id: person_name(c) for c in contacts}
    missing: dict[str, list[str]] = {}
    for result in results.values():
        for token in result.missing_tokens:
            missing.setdefault(token, []).append(names.get(result.contact_id, "?"))
    return Outcome(
        contacts,
        results,
        errors,
        missing,
        tokens,
        may_override=policy.may_override_enrollment_rules(user),
        overrides=overrides,
    )


def field_errors(exc: FormError | CadenzaError) -> dict[str, str]:
    """A refusal of the whole request, next to the field it is about."""
    if isinstance(exc, FormError):
        return {exc.field: exc.message}
    where = _FIELD_OF_CODE.get(exc.code)
    if where is None and exc.code == ErrorCode.VALIDATION_ERROR:
        where = "send" if "send_at" in exc.message else "settings"
    return {where or "general": exc.message}


def _contact_ids(raw: list[str]) -> list[int]:
    """The link's contact ids that a row can have, each once; the rest left out."""
    ids = []
    for value in raw[:MAX_CONTACTS_IN_URL]:
        number = row_id_of(value)
        if number is not None and number not in ids:
            ids.append(number)
    return ids


def _record_source(ctx: Context, request: Request):
    """The record view and its associated contacts when the dialog comes from a record."""
    try:
        record_type, record_id = read_record(request.query_params)
    except FormError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, exc.message) from None
    if record_type is None:
        return None, []
    view = records.get_record(ctx, record_type, record_id)
    return view, [a.contact_id for a in view.associations]


@router.get("/enroll")
def enroll_dialog(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    contact: list[str] = Query(default_factory=list),
    sequence: str = "",
):
    authorize_enrolling(user)
    chosen_ids = _contact_ids(contact)
    try:
        list_id = read_list(request.query_params)
    except FormError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, exc.message) from None
    member_list = lists.get_list(ctx, list_id) if list_id is not None else None
    if member_list is not None:
        chosen_ids = []  # the whole list is enrolled by a job, not these contacts
    source, associated = _record_source(ctx, request)
    if source is not None and not associated:
        raise CadenzaError(
            ErrorCode.NO_ASSOCIATED_CONTACT,
            f"{source.record.name} has no associated contact to enroll: associate one first",
        )
    if source is not None and not chosen_ids:
        if len(associated) > 1:  # the service would answer associated_contact_required
            return render(
                request,
                "enroll/choose.html",
                view=source,
                contacts={c.id: c for c in contact_index.get_contacts(ctx, associated)},
                sequence=sequence,
            )
        chosen_ids = associated
    contacts = contact_index.get_contacts(ctx, chosen_ids)
    sequences = list_sequences(ctx, actor_id=user.id)
    chosen = next((s for s in sequences if str(s.id) == sequence), None)
    if chosen is None and sequences:
        chosen = sequences[0]
    specs = step_specs(chosen) if chosen else []
    # One contact: their own subjects; several: sample data, never template code.
    headlines = step_headlines(
        specs,
        headline_context(ctx, user.id, contacts[0].id if len(contacts) == 1 else None),
        thread_follow_ups=SequenceSettings.from_dict(chosen.settings).thread_follow_ups
        if chosen
        else True,
    )
    own_mailboxes = mailboxes.list_mailboxes(ctx, owner_id=user.id)
    return render(
        request,
        "enroll/dialog.html",
        contacts=contacts,
        sequences=sequences,
        chosen=chosen,
        specs=specs,
        headlines=headlines,
        settings=chosen.settings if chosen else {},
        follow_up_choices=[f.value for f in FollowUpDays],
        mailboxes=own_mailboxes,
        # The ids of the mailboxes whose replies are not detected: marked, and confirmed.
        no_replies={m.id for m in own_mailboxes if mailboxes.misses_replies(m)},
        zones=sorted(available_timezones()),
        editable=EDITABLE_FIELDS,
        source=source,
        member_list=member_list,
        bulk_limit=ctx.settings.enroll_bulk_limit,
    )


@router.post("/enroll/check")
async def enroll_check(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    outcome = _run(ctx, form, user, dry_run=True)
    list_id = read_list(form) if not outcome.errors.get("general") else None
    if list_id is not None:
        return render(
            request,
            "enroll/list_check.html",
            outcome=outcome,
            fields=FIELDS,
            member_list=lists.get_list(ctx, list_id),
            bulk_limit=ctx.settings.enroll_bulk_limit,
        )
    return render(request, "enroll/check.html", outcome=outcome, fields=FIELDS)


@router.post("/enroll")
async def enroll_submit(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
):
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    outcome = _run(ctx, form, user, dry_run=False)
    if outcome.errors:  # nothing was written: show the dialog's check again
        response = render(request, "enroll/check.html", outcome=outcome, fields=FIELDS)
        response.headers["HX-Retarget"] = "#enroll-check"
        return response
    return render(
        request,
        "enroll/result.html",
        outcome=outcome,
        sequence_id=form.get("sequence"),
        viewer_tz=user.timezone,
        record_type=form.get("record_type"),
        record_id=form.get("record_id"),
    )
