"""Enroll contacts in a sequence: every rule of DESIGN §3–4, one transaction per request.

Each contact gets its own result. Whole-request problems (unknown sequence, bad time
zone, someone else's mailbox, ...) raise before anything is looked at per contact.
Each contact is written inside its own SAVEPOINT, so one failing contact leaves
nothing half-written while the valid ones still enroll. Contacts are row-locked
(PostgreSQL) or the whole write is serialised (SQLite's BEGIN IMMEDIATE), so two
concurrent requests cannot both put a contact into a sequence. A dry run writes
nothing and locks nothing: it is a read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain import policy, schedule, templates
from cadenza.domain.contact_fields import is_valid_email, parse_timezone
from cadenza.domain.eligibility import (
    ContactFacts,
    LiveEnrollment,
    Refusal,
    hard_refusal,
    refusal_for,
    rule_refusals,
)
from cadenza.domain.enums import (
    AutomationEventType,
    EnrollmentState,
    EnrollWarningCode,
    Exclusivity,
    Reenrollment,
    UnenrollReason,
    WebhookEvent,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context, normalize_token_values
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sequence_settings import EnrollmentRules, SequenceSettings
from cadenza.domain.steps import StepSpec, validate_edits
from cadenza.domain.variants import assigned_label
from cadenza.services.access import authorize_enrolling
from cadenza.services.accounts.mailboxes import misses_replies
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.crm.contacts import ContactView
from cadenza.services.crm.records import associated_contact_ids, contacts_for_enrollment
from cadenza.services.enrollment.candidates import (
    Live,
    blocked_from,
    blocked_patterns,
    blocked_read,
    contacts_from,
    contacts_read,
    is_blocked,
    live_enrollments,
    live_from,
    live_read,
    own_rules,
    row_ids,
)
from cadenza.services.enrollment.control import end_enrollment
from cadenza.services.enrollment.progress import add_step_run
from cadenza.services.events_out import triggers, webhooks
from cadenza.services.events_out.webhooks import enrollment_event
from cadenza.services.lookup import not_found
from cadenza.services.sequences.catalog import WITH_STEPS, step_specs, usable_sequence
from cadenza.services.sequences.personalization import contact_values, sender_values, values_lacking
from cadenza.services.sequences.variants import decide_winners
from cadenza.store.models import (
    Contact,
    Enrollment,
    Mailbox,
    Message,
    Sequence,
    User,
)
from cadenza.store.prepared import Prepared, Read, rows_together


@dataclass
class ContactRequest:
    contact_id: int
    token_values: dict[str, Any] = field(default_factory=dict)
    step_edits: dict[Any, dict[str, str]] = field(default_factory=dict)


@dataclass
class EnrollRequest:
    sequence_id: int
    user_id: int
    contacts: list[ContactRequest]
    mailbox_id: int | None = None
    start_step: int = 1
    timezone: str | None = None
    # Aware: that instant. Naive: that wall-clock time in each enrollment's own time
    # zone ("9:00 their time"), which is why it is resolved per contact.
    send_at: datetime | None = None
    dry_run: bool = False
    # The web dialog asks the person to confirm the warnings first (False until they
    # tick the box); the API and the CLI enroll and report them in each result.
    confirmed_warnings: bool = True
    # Follow-up settings for this enrollment only, over the sequence's (the enroll
    # dialog offers them); None keeps the sequence's settings.
    settings: dict[str, Any] | None = None
    # Enrolling from a record: "contact", or an object type ("company", "deal", ...) and
    # its id. Other records enroll through their associated contacts (`contacts` then
    # chooses among them, or may be empty when there is exactly one).
    record_type: str | None = None
    record_id: int | None = None
    # Values for everyone, used for a token only where the contact's record has none
    # (the dialog's "Update all", the CLI's --token, a list's values); a contact's own
    # `token_values` win over both.
    token_defaults: dict[str, Any] = field(default_factory=dict)
    # Enrollments earlier batches of the same dry run would have made: a dry run writes
    # none, yet its later batches must meet the daily limit as the real run will.
    dry_run_enrolled: int = 0
    # Contacts (ids, among `contacts`) whose enrollment rules (exclusivity, re-enrollment,
    # days since emailed) are set aside: admins, and users with the permission, only.
    override_rules: list[int] = field(default_factory=list)


@dataclass
class EnrollOptions:
    """What every contact of one enrollment shares: the one definition of the choices
    the enroll dialog, the API (`EnrollOptionsIn`), the CLI and a list job offer."""

    mailbox_id: int | None = None
    start_step: int = 1
    timezone: str | None = None
    send_at: datetime | None = None  # naive: that wall-clock time in each contact's zone
    settings: dict[str, Any] | None = None  # follow-up settings over the sequence's
    token_values: dict[str, Any] = field(default_factory=dict)  # for whoever lacks one
    confirmed_warnings: bool = True  # see EnrollRequest; a list job asks when it starts

    def request(
        self, sequence_id: int, user_id: int, contacts: list[ContactRequest], **extra: Any
    ) -> EnrollRequest:
        return EnrollRequest(
            sequence_id=sequence_id,
            user_id=user_id,
            contacts=contacts,
            mailbox_id=self.mailbox_id,
            start_step=self.start_step,
            timezone=self.timezone,
            send_at=self.send_at,
            settings=self.settings,
            token_defaults=dict(self.token_values),
            confirmed_warnings=self.confirmed_warnings,
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        """For a list job's `options` column (the mailbox has its own)."""
        return {
            "start_step": self.start_step,
            "timezone": self.timezone,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "settings": self.settings,
            "token_values": self.token_values,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, mailbox_id: int | None) -> EnrollOptions:
        data = data or {}
        send_at = data.get("send_at")
        return cls(
            mailbox_id=mailbox_id,
            start_step=data.get("start_step", 1),
            timezone=data.get("timezone"),
            send_at=datetime.fromisoformat(send_at) if send_at else None,
            settings=data.get("settings"),
            token_values=data.get("token_values") or {},
        )


@dataclass(frozen=True)
class ScheduledStep:
    step: int
    due_at: datetime  # aware, in the enrollment's time zone


@dataclass(frozen=True)
class EnrollWarning:
    """Something the enrollment goes ahead with but the person should know."""

    code: str
    message: str


@dataclass
class ContactResult:
    contact_id: int
    ok: bool
    enrollment_id: int | None = None
    code: str | None = None
    message: str | None = None
    missing_tokens: list[str] = field(default_factory=list)
    timezone: str | None = None
    schedule: list[ScheduledStep] = field(default_factory=list)
    warnings: list[EnrollWarning] = field(default_factory=list)
    # A refusal by an enrollment rule, which a permitted user may override for this contact
    overridable: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the other sequence, a date


@dataclass
class _Plan:
    """What is shared by every contact of one request, validated once."""

    user: User
    mailbox: Mailbox
    sequence_id: int
    specs: list[StepSpec]
    settings: SequenceSettings
    start_step: int
    tz_override: ZoneInfo | None
    now: datetime
    bulk: bool
    daily_limit: int
    warnings: list[EnrollWarning] = field(default_factory=list)
    source_record_id: int | None = None
    # Steps whose A/B winner rule has decided: position -> the label everyone gets.
    winners: dict[int, str] = field(default_factory=dict)
    rules: EnrollmentRules = field(default_factory=EnrollmentRules)  # resolved
    default_exclusivity: Exclusivity = Exclusivity.NONE  # of sequences that set none
    overrides: frozenset[int] = frozenset()
    sender: dict[str, Any] = field(default_factory=dict)  # the sender's token values
    # The user's enrollments since their midnight: read with the contacts (`_read_contacts`)
    enrolled_today: int = 0
    # The steps from the start step on and the templates they render, for the contacts
    # that get the sequence's own steps (no edits, no variants): worked out once.
    shared_remaining: tuple[list[StepSpec], list[str]] | None = None
    # Projected schedules by (zone, first due time, remaining steps' delays): contacts
    # that share all three share the schedule, projected once per request.
    schedules: dict[tuple, list[ScheduledStep]] = field(default_factory=dict)


def enroll(ctx: Context, request: EnrollRequest) -> list[ContactResult]:
    """A dry run writes nothing, so it reads: no write lock (SQLite) and no row locks
    (PostgreSQL), and previews never queue behind each other or behind enrollments."""
    with ctx.db.read() if request.dry_run else ctx.db.transaction() as session:
        return enroll_in(session, ctx, request)


def enroll_in_batches(ctx: Context, request: EnrollRequest) -> list[ContactResult]:
    """A selection larger than the bulk limit (the web app's selection across pages),
    enrolled one batch of `CADENZA_ENROLL_BULK_LIMIT` at a time, each batch its own
    request and transaction with every usual rule (the daily limit refuses the contacts
    past it). A whole-request refusal comes from the first batch, before anything is
    written."""
    limit = ctx.settings.enroll_bulk_limit
    if len(request.contacts) <= limit:
        return enroll(ctx, request)
    results: list[ContactResult] = []
    for start in range(0, len(request.contacts), limit):
        batch = replace(
            request,
            contacts=request.contacts[start : start + limit],
            dry_run_enrolled=sum(1 for r in results if r.ok) if request.dry_run else 0,
        )
        results.extend(enroll(ctx, batch))
    return results


def enroll_in(session: Session, ctx: Context, request: EnrollRequest) -> list[ContactResult]:
    """`enroll` inside the caller's transaction (automation acts in its own)."""
    _check_request_shape(ctx, request)
    plan = _plan(ctx, session, request)
    source, allowed = _source(session, request)
    plan.source_record_id = source
    contacts, live, blocked = _read_contacts(ctx, session, plan, request)
    _check_overrides(plan, request)
    facts = _rule_facts(session, plan, list(contacts), live)
    results: list[ContactResult] = []
    seen: set[int] = set()
    for item in request.contacts:
        if item.contact_id in seen:
            results.append(_refused(item.contact_id, ErrorCode.DUPLICATE_CONTACT, "listed twice"))
            continue
        seen.add(item.contact_id)
        if allowed is not None and item.contact_id not in allowed:
            results.append(_not_associated(request, item.contact_id))
            continue
        result = _enroll_one(
            ctx, session, plan, request, item, contacts.get(item.contact_id), facts, blocked
        )
        if result.ok:
            plan.enrolled_today += 1
        results.append(result)
    return results


def _source(session: Session, request: EnrollRequest) -> tuple[int | None, set[int] | None]:
    """The source record's id and the contacts it may enroll (None: any contact).
    Fills `request.contacts` from the record's only associated contact when none given."""
    if request.record_type is None:
        return None, None
    record, ids = contacts_for_enrollment(
        session, request.record_type, request.record_id, [c.contact_id for c in request.contacts]
    )
    if not request.contacts:
        request.contacts = [ContactRequest(contact_id=i) for i in ids]
    if record is None:
        return None, None
    return record.id, associated_contact_ids(session, record.id)


def _not_associated(request: EnrollRequest, contact_id: int) -> ContactResult:
    return _refused(
        contact_id,
        ErrorCode.NOT_ASSOCIATED,
        f"contact {contact_id} is not associated with {request.record_type} {request.record_id}",
    )


def _check_request_shape(ctx: Context, request: EnrollRequest) -> None:
    _check_options(ctx, request)
    if request.record_type is not None or request.record_id is not None:
        if request.record_type is None or request.record_id is None:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                "record_type and record_id go together",
                {"field": "record_id" if request.record_id is None else "record_type"},
            )
        if not request.contacts:
            return  # the record's associated contact, resolved in the transaction
    if not request.contacts:
        raise CadenzaError(ErrorCode.NO_CONTACTS, "choose at least one contact to enroll")
    limit = ctx.settings.enroll_bulk_limit
    if len(request.contacts) > limit:
        raise CadenzaError(
            ErrorCode.BULK_LIMIT_EXCEEDED,
            f"at most {limit} contacts can be enrolled at once; got {len(request.contacts)}",
            {"limit": limit, "requested": len(request.contacts)},
        )


def _check_options(ctx: Context, request: EnrollRequest) -> None:
    """The shared choices that need no database: zone, values for everyone, send time."""
    if request.timezone is not None:
        parse_timezone(request.timezone)
    request.token_defaults = normalize_token_values(request.token_defaults)
    _check_send_at(ctx, request.send_at)


# Far beyond any real campaign; a send_at further out would overflow the date arithmetic
# of the schedule (steps wait up to a year each) instead of being refused.
SEND_AT_HORIZON = timedelta(days=5 * 365)
# Wall-clock offsets span UTC-12 to UTC+14: a local time this far back is past everywhere.
WIDEST_OFFSET_SPAN = timedelta(days=2)


def _check_send_at(ctx: Context, send_at: datetime | None) -> None:
    """Refuses what cannot be scheduled, before any contact is looked at. A naive
    send_at is checked per contact later, in that contact's zone."""
    if send_at is None:
        return
    now = ctx.clock.now()
    instant = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)  # within a day of it
    details = {"send_at": send_at.isoformat()}
    if instant - now > SEND_AT_HORIZON:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"send_at must be within {SEND_AT_HORIZON.days} days from now",
            details,
        )
    if send_at.tzinfo is not None and send_at <= now:
        raise CadenzaError(
            ErrorCode.SEND_AT_IN_PAST,
            f"send_at {send_at.isoformat()} is not in the future",
            details,
        )
    if send_at.tzinfo is None and now - instant > WIDEST_OFFSET_SPAN:
        raise CadenzaError(
            ErrorCode.SEND_AT_IN_PAST,
            f"send_at {send_at.isoformat()} has passed in every time zone",
            details,
        )


def _plan(ctx: Context, session: Session, request: EnrollRequest) -> _Plan:
    user, found, mailboxes = _request_rows(session, request)
    authorize_enrolling(user)
    sequence = usable_sequence(found, request.sequence_id, user)
    specs = step_specs(sequence)
    if not specs:
        raise CadenzaError(ErrorCode.SEQUENCE_HAS_NO_STEPS, f"sequence {sequence.id} has no steps")
    if (
        isinstance(request.start_step, bool)
        or not isinstance(request.start_step, int)
        or not 1 <= request.start_step <= len(specs)
    ):
        raise CadenzaError(
            ErrorCode.INVALID_START_STEP,
            f"start_step must be between 1 and {len(specs)}, got {request.start_step!r}",
            {"steps": len(specs)},
        )
    if request.settings and "enrollment_rules" in request.settings:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "enrollment rules are the sequence's, not an enrollment's: to enroll a contact "
            "they refuse, list it in override_rules",
            {"field": "settings.enrollment_rules"},
        )
    overrides = _override_ids(request)
    if overrides and not policy.may_override_enrollment_rules(user):
        raise CadenzaError(
            ErrorCode.OVERRIDE_NOT_ALLOWED,
            "you do not have permission to override enrollment rules: ask an admin",
            {"override_rules": sorted(overrides)},
        )
    now = ctx.clock.now()
    mailbox = _resolve_mailbox(user, request.mailbox_id, mailboxes)
    warnings = mailbox_warnings(mailbox)
    if warnings and not request.confirmed_warnings and not request.dry_run:
        raise CadenzaError(
            ErrorCode.WARNINGS_NOT_CONFIRMED,
            f"{warnings[0].message}: confirm to enroll anyway",
            {"warnings": [w.code for w in warnings]},
        )
    default_rules = ctx.settings.enrollment_rules()
    return _Plan(
        user=user,
        mailbox=mailbox,
        warnings=warnings,
        sequence_id=sequence.id,
        rules=SequenceSettings.from_dict(sequence.settings).enrollment_rules.resolved(
            default_rules
        ),
        default_exclusivity=default_rules.exclusivity or Exclusivity.NONE,
        overrides=overrides,
        specs=specs,
        settings=SequenceSettings.from_dict({**sequence.settings, **(request.settings or {})}),
        start_step=request.start_step,
        tz_override=parse_timezone(request.timezone) if request.timezone else None,
        now=now,
        bulk=len(request.contacts) > 1,
        daily_limit=user.daily_enrollment_limit or ctx.settings.daily_enrollment_limit,
        winners=decide_winners(session, sequence.id, specs, now, record=not request.dry_run),
        sender=sender_values(user, mailbox),
    )


def mailbox_warnings(mailbox: Mailbox) -> list[EnrollWarning]:
    """What enrolling through this mailbox goes ahead with: its inbox not being read."""
    if not misses_replies(mailbox):
        return []
    return [
        EnrollWarning(
            EnrollWarningCode.REPLIES_NOT_DETECTED,
            f"replies to {mailbox.from_email} are not detected (no inbox is read): "
            "a contact who replies keeps getting the follow-ups",
        )
    ]


def check_plan(session: Session, ctx: Context, request: EnrollRequest) -> None:
    """The whole-request checks alone (user may enroll, sequence, mailbox, start step),
    for callers that enroll later in batches (list jobs, automation rules)."""
    _check_options(ctx, request)
    _plan(ctx, session, request)


def daily_limit_resets_at(ctx: Context, user: User, now: datetime) -> datetime:
    """The next midnight in the user's time zone, when the daily limit starts afresh."""
    tz = parse_timezone(user.timezone or ctx.settings.default_timezone)
    tomorrow = now.astimezone(tz).date() + timedelta(days=1)
    return schedule.local_to_utc(datetime(tomorrow.year, tomorrow.month, tomorrow.day), tz)


def _request_rows(
    session: Session, request: EnrollRequest
) -> tuple[User, Sequence | None, list[Mailbox]]:
    """The enroller; the sequence, with its steps (None if there is none); and the
    mailbox the request names, or every mailbox the enroller owns when it names none
    (by id: the error that lists them lists them in a stable order). One statement:
    each of the three read on its own was a round trip of the enroll preview's few
    (bench/api.py, docs/benchmarks.md, the twenty-first session). Nothing is decided
    here: `_plan` checks them in its order, so a request wrong in several ways gets
    the same first error as when they were read one by one."""
    mailbox_id = request.mailbox_id
    rows = (
        session.execute(
            select(User, Sequence, Mailbox)
            .select_from(User)
            .outerjoin(Sequence, Sequence.id == request.sequence_id)
            .outerjoin(
                Mailbox,
                Mailbox.owner_id == User.id if mailbox_id is None else Mailbox.id == mailbox_id,
            )
            .where(User.id == request.user_id)
            .order_by(Mailbox.id)
            .options(WITH_STEPS)
        )
        .unique()
        .all()
    )
    if not rows:
        raise not_found(User, request.user_id)
    user, sequence, _ = rows[0]
    return user, sequence, [mailbox for _, _, mailbox in rows if mailbox is not None]


def _resolve_mailbox(user: User, mailbox_id: int | None, mailboxes: list[Mailbox]) -> Mailbox:
    """The mailbox to send from, of `_request_rows`' `mailboxes`."""
    if mailbox_id is None:
        owned = mailboxes
        if not owned:
            raise CadenzaError(
                ErrorCode.MAILBOX_NOT_FOUND, "you have no mailbox to send from: connect one first"
            )
        if len(owned) > 1:
            raise CadenzaError(
                ErrorCode.MAILBOX_REQUIRED,
                "you have several mailboxes: choose the one to send from",
                {"mailbox_ids": [m.id for m in owned]},
            )
        mailbox = owned[0]
    else:
        if not mailboxes:
            raise not_found(Mailbox, mailbox_id)
        [mailbox] = mailboxes
        authorize_enrolling(user, mailbox)
    if not mailbox.connected:
        raise CadenzaError(
            ErrorCode.MAILBOX_DISCONNECTED,
            f"mailbox {mailbox.from_email} is disconnected: reconnect it before enrolling",
            {"reason": mailbox.disconnected_reason},
        )
    return mailbox


def _read_contacts(
    ctx: Context, session: Session, plan: _Plan, request: EnrollRequest
) -> tuple[dict[int, ContactView], dict[int, list[Live]], set[str]]:
    """The request's contacts that exist, by id, their live enrollments and the block
    list's entries for their addresses; and the user's enrollments today, into
    `plan.enrolled_today`. Four reads that need nothing of each other, run together:
    one round trip on PostgreSQL (store/prepared.py `rows_together`)."""
    connection = session.connection()
    ids = row_ids(c.contact_id for c in request.contacts)
    reads = [_enrolled_today(ctx, plan.user, plan.now)]
    if ids:
        reads += [
            contacts_read(connection, ids, lock=not request.dry_run),
            live_read(connection, ids),
            blocked_read(connection, ids),
        ]
    [(count,)], *rows = rows_together(connection, reads)
    plan.enrolled_today = int(count) + request.dry_run_enrolled
    if not rows:
        return {}, {}, set()
    contact_rows, live_rows, blocked_rows = rows
    return (
        contacts_from(contact_rows),
        live_from(live_rows, plan.default_exclusivity),
        blocked_from(blocked_rows),
    )


def _enrolled_today(ctx: Context, user: User, now: datetime) -> Read:
    """The daily limit counts enrollments since midnight in the user's own time zone."""
    tz = parse_timezone(user.timezone or ctx.settings.default_timezone)
    local_midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    since = schedule.local_to_utc(local_midnight.replace(tzinfo=None), tz)
    return _ENROLLED_SINCE, {"user_id": user.id, "since": since}


# Every enroll request's count for the daily limit, compiled once (store/prepared.py).
_ENROLLED_SINCE = Prepared(
    select(func.count())
    .select_from(Enrollment)
    .where(
        Enrollment.enrolled_by_id == bindparam("user_id"),
        Enrollment.enrolled_at >= bindparam("since"),
    )
)


def contact_refusal(
    session: Session, ctx: Context, contact: Contact, sequence_id: int
) -> Refusal | None:
    """Whether this contact may be in this sequence now, by the rules an enrollment
    checks (address, bounce, unsubscribe, block list, live here, exclusivity): for a
    step a person retries after its enrollment ended (delivery.outbox.retry_messages).
    The same enrollment goes on, so re-enrollment and days since emailed do not apply."""
    default = ctx.settings.enrollment_rules()
    live = live_enrollments(session, [contact.id], default.exclusivity or Exclusivity.NONE)
    facts = ContactFacts(
        email=contact.email,
        email_valid=_valid_email(contact.email),
        bounced=contact.bounced_at is not None,
        unsubscribed=contact.unsubscribed_at is not None,
        blocked=is_blocked(contact, blocked_patterns(session, [contact.id])),
        live=tuple(item.view for item in live.get(contact.id, ())),
    )
    sequence = session.get_one(Sequence, sequence_id)
    rules = replace(
        own_rules(sequence.settings).resolved(default),
        reenrollment=Reenrollment.WHEN_NOT_LIVE,
        min_days_since_emailed=0,
    )
    return refusal_for(facts, sequence_id, rules, ctx.clock.now())


@dataclass
class _RuleFacts:
    """What the enrollment rules need to know of a request's contacts, read in bulk: one
    query per rule in force, whatever the number of contacts."""

    live: dict[int, list[Live]]
    enrolled_before: set[int]
    last_emailed: dict[int, datetime]


def _rule_facts(
    session: Session, plan: _Plan, contact_ids: list[int], live: dict[int, list[Live]]
) -> _RuleFacts:
    enrolled_before: set[int] = set()
    if plan.rules.reenrollment is Reenrollment.ONCE and contact_ids:
        enrolled_before = set(
            session.scalars(
                select(Enrollment.contact_id)
                .where(
                    Enrollment.sequence_id == plan.sequence_id,
                    Enrollment.contact_id.in_(contact_ids),
                )
                .distinct()
            )
        )
    last_emailed: dict[int, datetime] = {}
    if plan.rules.min_days_since_emailed and contact_ids:
        rows = session.execute(
            select(Message.contact_id, func.max(Message.sent_at))
            .where(Message.contact_id.in_(contact_ids), Message.sent_at.is_not(None))
            .group_by(Message.contact_id)
        )
        last_emailed = {c: at for c, at in rows if c is not None and at is not None}
    return _RuleFacts(
        live=live,
        enrolled_before=enrolled_before,
        last_emailed=last_emailed,
    )


def _override_ids(request: EnrollRequest) -> frozenset[int]:
    ids = request.override_rules or []
    if not isinstance(ids, list | tuple | set | frozenset) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "override_rules must be a list of contact ids",
            {"field": "override_rules"},
        )
    return frozenset(ids)


def _check_overrides(plan: _Plan, request: EnrollRequest) -> None:
    """An override names contacts of this request, nobody else."""
    stray = sorted(plan.overrides - {c.contact_id for c in request.contacts})
    if stray:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"override_rules names contact(s) not in this enrollment: "
            f"{', '.join(map(str, stray[:10]))}",
            {"field": "override_rules", "contact_ids": stray[:10]},
        )


def _valid_email(address: str | None) -> bool:
    return bool(address) and is_valid_email(address)


def _refused(contact_id: int, code: ErrorCode, message: str, **extra: Any) -> ContactResult:
    return ContactResult(contact_id=contact_id, ok=False, code=str(code), message=message, **extra)


def _enroll_one(
    ctx: Context,
    session: Session,
    plan: _Plan,
    request: EnrollRequest,
    item: ContactRequest,
    contact: ContactView | None,
    known: _RuleFacts,
    blocked: set[str],
) -> ContactResult:
    if contact is None:
        return _refused(
            item.contact_id,
            ErrorCode.CONTACT_NOT_FOUND,
            f"contact {item.contact_id} does not exist",
        )
    live = known.live.get(contact.id, [])
    facts = ContactFacts(
        email=contact.email,
        email_valid=_valid_email(contact.email),
        bounced=contact.bounced_at is not None,
        unsubscribed=contact.unsubscribed_at is not None,
        blocked=is_blocked(contact, blocked),
        live=tuple(item.view for item in live),
        enrolled_before=contact.id in known.enrolled_before,
        last_emailed_at=known.last_emailed.get(contact.id),
    )
    refusal = hard_refusal(facts, plan.sequence_id, plan.rules)
    if refusal is not None:
        return _refused(contact.id, refusal.code, refusal.message)
    overridden = rule_refusals(facts, plan.sequence_id, plan.rules, plan.now)
    if overridden and contact.id not in plan.overrides:
        first = overridden[0]
        return _refused(
            contact.id, first.code, first.message, overridable=True, details=dict(first.details)
        )
    restarted = next((i for i in live if i.view.sequence_id == plan.sequence_id), None)
    if restarted is not None and not policy.may(
        plan.user, Resource.ENROLLMENT, Action.UPDATE, restarted.owners
    ):
        return _refused(
            contact.id,
            ErrorCode.ALREADY_ENROLLED,
            "the contact is already in this sequence, enrolled by another user: only they "
            "or an admin can start it again",
        )
    try:
        steps = _personal_steps(plan, contact.id, item.step_edits)
        token_values = normalize_token_values(item.token_values)
    except CadenzaError as exc:
        return _refused(contact.id, ErrorCode.INVALID_STEP_EDIT, exc.message)
    token_values = {**values_lacking(request.token_defaults, contact), **token_values}
    context = build_context(contact_values(contact), plan.sender, token_values)
    remaining, texts = _remaining(plan, steps)
    missing = templates.missing_tokens(texts, context)
    if missing:
        return _refused(
            contact.id,
            ErrorCode.MISSING_TOKEN_VALUES,
            f"no value for {', '.join(missing)}: give token_values for them",
            missing_tokens=missing,
        )
    if plan.enrolled_today >= plan.daily_limit:
        return _refused(
            contact.id,
            ErrorCode.DAILY_ENROLLMENT_LIMIT,
            f"you reached your daily limit of {plan.daily_limit} enrollments",
        )
    tz_name, tz = _timezone_for(ctx, plan, contact)
    first_due = _first_due(plan, request.send_at, tz)
    if first_due is None:
        return _refused(
            contact.id,
            ErrorCode.SEND_AT_IN_PAST,
            f"{request.send_at:%Y-%m-%d %H:%M} in {tz_name} has already passed",
            timezone=tz_name,
        )
    result = ContactResult(
        contact_id=contact.id,
        ok=True,
        warnings=[*plan.warnings, *_rule_warnings(overridden, restarted)],
        timezone=tz_name,
        schedule=list(_projected(plan, remaining, tz, first_due)),
    )
    if request.dry_run:
        return result
    try:
        with session.begin_nested():
            if restarted is not None:
                _end_for_restart(session, ctx, plan, restarted)
            enrollment = _write_enrollment(
                session, plan, contact, steps, token_values, tz_name, first_due, request
            )
    except IntegrityError:
        return _refused(contact.id, ErrorCode.ALREADY_ENROLLED, "the contact was just enrolled")
    known.live[contact.id] = [
        *(i for i in live if i is not restarted),
        Live(
            LiveEnrollment(enrollment.id, plan.sequence_id, "", plan.rules.exclusivity),
            (plan.user.id, plan.mailbox.owner_id),
        ),
    ]
    audit: dict[str, Any] = {"contact_id": contact.id, "sequence_id": plan.sequence_id}
    record(session, ctx, plan.user.id, "enrollment.create", "enrollment", enrollment.id, audit)
    if overridden:
        audit["overridden"] = [
            {"rule": str(r.code), "message": r.message, **r.details} for r in overridden
        ]
        record(
            session, ctx, plan.user.id, "enrollment.override_rules", "enrollment",
            enrollment.id, audit,
        )  # fmt: skip
    result.enrollment_id = enrollment.id
    return result


def _projected(
    plan: _Plan, remaining: list[StepSpec], tz: ZoneInfo, first_due: datetime
) -> list[ScheduledStep]:
    """The schedule of `remaining` from `first_due` in `tz` (each time in that zone)."""
    delays = tuple((s.position, s.delay_days, s.delay_hours) for s in remaining)
    key = (tz.key, first_due, delays)
    if key not in plan.schedules:
        projected = schedule.project_timeline(
            steps=[schedule.StepDelay(days, hours) for _, days, hours in delays],
            positions=[position for position, _, _ in delays],
            tz=tz,
            settings=plan.settings,
            anchor=first_due,
            anchor_is_first_step=True,
        )
        plan.schedules[key] = [
            ScheduledStep(p.position, p.due_at.astimezone(tz)) for p in projected
        ]
    return plan.schedules[key]


def _rule_warnings(overridden: list[Refusal], restarted: Live | None) -> list[EnrollWarning]:
    """What an enrollment that goes ahead sets aside: rules overridden, a live one ended."""
    warnings = [
        EnrollWarning(EnrollWarningCode.RULE_OVERRIDDEN, f"{r.code} overridden: {r.message}")
        for r in overridden
    ]
    if restarted is not None:
        warnings.append(
            EnrollWarning(
                EnrollWarningCode.RESTARTED,
                f"the contact's live enrollment #{restarted.view.enrollment_id} in this "
                "sequence ends and a new one starts (re-enrollment: any time)",
            )
        )
    return warnings


def _end_for_restart(session: Session, ctx: Context, plan: _Plan, live: Live) -> None:
    """Re-enrollment "any time": the live enrollment ends (unenrolled, manual) before the
    new one is written, in the same savepoint, so the one-live-per-sequence index holds."""
    enrollment = session.get_one(Enrollment, live.view.enrollment_id, with_for_update=True)
    end_enrollment(
        session,
        ctx,
        enrollment,
        UnenrollReason.MANUAL,
        "re-enrolled: a new enrollment in this sequence started",
        actor_id=plan.user.id,
    )
    session.flush()


def _remaining(plan: _Plan, steps: list[StepSpec]) -> tuple[list[StepSpec], list[str]]:
    """The steps this contact gets from the start step on, and every template they
    render (for the token check)."""
    if steps is plan.specs and plan.shared_remaining is not None:
        return plan.shared_remaining
    remaining = [s for s in steps if s.position >= plan.start_step]
    found = remaining, [t for s in remaining for t in s.templates()]
    if steps is plan.specs:
        plan.shared_remaining = found
    return found


def _personal_steps(
    plan: _Plan, contact_id: int, step_edits: dict[Any, dict[str, str]]
) -> list[StepSpec]:
    """The steps this contact gets: their edits applied and, on a step with variants,
    one variant (the decided winner, else the contact's stable draw; an edit wins).
    Without either, the sequence's own steps: the very list every such contact shares."""
    specs = plan.specs
    if not step_edits and not any(s.variants for s in specs):
        return specs
    by_position = {s.position: s for s in specs}
    edits_by_position: dict[int, dict[str, str]] = {}
    for key, edits in (step_edits or {}).items():
        try:
            position = int(key)
        except (TypeError, ValueError):
            position = None
        if position not in by_position:
            raise CadenzaError(ErrorCode.INVALID_STEP_EDIT, f"there is no step {key!r} to edit")
        edits_by_position[position] = validate_edits(by_position[position], edits)
    return [
        s.with_edits(edits_by_position.get(s.position, {}), _variant_for(plan, contact_id, s))
        for s in specs
    ]


def _variant_for(plan: _Plan, contact_id: int, spec: StepSpec) -> str | None:
    if not spec.variants:
        return None
    if spec.position in plan.winners:
        return plan.winners[spec.position]
    labels = [v.label for v in spec.variants]
    return assigned_label(labels, plan.sequence_id, contact_id, spec.position)


def _timezone_for(ctx: Context, plan: _Plan, contact: ContactView) -> tuple[str, ZoneInfo]:
    """Chosen at enrollment, else the contact's, else the sender's, else the default."""
    if plan.tz_override is not None:
        return plan.tz_override.key, plan.tz_override
    for name in (contact.timezone, plan.user.timezone, ctx.settings.default_timezone):
        if name:
            try:
                return name, parse_timezone(name)
            except CadenzaError:
                continue
    return "UTC", ZoneInfo("UTC")


def _first_due(plan: _Plan, send_at: datetime | None, tz: ZoneInfo) -> datetime | None:
    if send_at is not None and send_at.tzinfo is None:
        send_at = schedule.local_to_utc(send_at, tz)
        if send_at <= plan.now:
            return None
    return schedule.first_step_due(plan.now, send_at)


def _write_enrollment(
    session: Session,
    plan: _Plan,
    contact: ContactView,
    steps: list[StepSpec],
    token_values: dict[str, str],
    tz_name: str,
    first_due: datetime,
    request: EnrollRequest,
) -> Enrollment:
    enrollment = Enrollment(
        contact_id=contact.id,
        sequence_id=plan.sequence_id,
        mailbox_id=plan.mailbox.id,
        enrolled_by_id=plan.user.id,
        timezone=tz_name,
        state=EnrollmentState.ACTIVE,
        start_step=plan.start_step,
        steps_snapshot=[s.to_dict() for s in steps],
        settings_snapshot=plan.settings.to_dict(),
        token_values=token_values,
        bulk=plan.bulk,
        send_at=first_due if request.send_at is not None else None,
        enrolled_at=plan.now,
        source_record_id=plan.source_record_id,
    )
    session.add(enrollment)
    session.flush()
    counters.enrolled(session, plan.sequence_id, plan.now)
    add_step_run(session, enrollment, plan.start_step, first_due, plan.now)
    session.flush()
    webhooks.emit(
        session,
        plan.now,
        WebhookEvent.ENROLLED,
        {
            **enrollment_event(enrollment),
            "enrolled_by_id": plan.user.id,
            "first_due_at": first_due.isoformat(),
        },
    )
    triggers.record(
        session,
        plan.now,
        AutomationEventType.ENROLLED,
        contact.id,
        {"enrollment_id": enrollment.id, "sequence_id": plan.sequence_id},
    )
    return enrollment
