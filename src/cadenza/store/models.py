"""The relational model (DESIGN §6). Services are the only writers.

Invariants that must hold across many workers live in the schema, not only in code:
one step run per (enrollment, step) — so a step can never be sent twice — and at most
one live enrollment of a contact in a given sequence. Due-time lookups use a partial
index over pending step runs only, so a worker's tick costs what is due, not what exists.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.domain.enums import (
    AutomationEventType,
    AutomationOutcome,
    DigestStatus,
    EnrollmentState,
    EventKind,
    ListJobStatus,
    ListKind,
    MailboxAuth,
    MessageStatus,
    OAuthProvider,
    ReminderTiming,
    Sharing,
    StepRunStatus,
    StepWaitReason,
    TaskStatus,
    UnenrollReason,
    WebhookDeliveryStatus,
)
from cadenza.store.types import StrEnumType, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Sealed values (services/accounts/keys.py) are longer than the clear text: Text on PostgreSQL;
# SQLite never enforces a length, so its columns keep their declared one (no rebuild).
_SEALED_500 = String(500).with_variant(Text(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    firstname: Mapped[str] = mapped_column(String(100), default="")
    lastname: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")
    can_enroll: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    daily_enrollment_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    # Each session cookie carries the epoch it was made in; raising it ends them all.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # May enroll a contact an enrollment rule refuses (admins always may): migration 0023.
    can_override_enrollment_rules: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    deactivated_at: Mapped[datetime | None]
    # Task reminders and the daily digest (domain/reminders.py, migration 0017).
    reminder_timing: Mapped[ReminderTiming] = mapped_column(
        StrEnumType(ReminderTiming), default=ReminderTiming.AT_DUE, server_default="at_due"
    )
    reminder_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    digest_hour: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    # The rep's own touches (docs/content.md): sanitised HTML, an http(s) URL.
    signature_html: Mapped[str | None] = mapped_column(Text)
    meeting_link: Mapped[str | None] = mapped_column(String(2000))

    mailboxes: Mapped[list[Mailbox]] = relationship(back_populates="owner")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # None: everything its user may do; "events": only POST /api/v1/events (integrations).
    scopes: Mapped[str | None] = mapped_column(String(200))


class Mailbox(Base):
    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    from_email: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(200), default="")
    transport: Mapped[str] = mapped_column(String(20), default="capture")
    smtp_host: Mapped[str | None] = mapped_column(String(255))
    smtp_port: Mapped[int | None] = mapped_column(Integer)
    smtp_security: Mapped[str] = mapped_column(String(20), default="starttls")
    smtp_username: Mapped[str | None] = mapped_column(String(320))
    # A secret the worker must replay to the server, so it cannot be hashed: stored
    # sealed (services/accounts/keys.py), never returned by the API nor logged.
    smtp_password: Mapped[str | None] = mapped_column(_SEALED_500)
    # Where replies and bounces arrive (optional): the inbox poller reads it over IMAP.
    imap_host: Mapped[str | None] = mapped_column(String(255))
    imap_port: Mapped[int | None] = mapped_column(Integer)
    imap_security: Mapped[str] = mapped_column(String(20), default="tls", server_default="tls")
    imap_username: Mapped[str | None] = mapped_column(String(320))
    # Like smtp_password: replayed to the server, so stored, and never returned or logged.
    imap_password: Mapped[str | None] = mapped_column(_SEALED_500)
    # password: the two passwords above; oauth2: the tokens below, over SASL XOAUTH2.
    auth_method: Mapped[MailboxAuth] = mapped_column(
        StrEnumType(MailboxAuth), default=MailboxAuth.PASSWORD, server_default="password"
    )
    oauth_provider: Mapped[OAuthProvider | None] = mapped_column(StrEnumType(OAuthProvider))
    # Bearer secrets (Microsoft's run past 1,000 characters): sealed like the passwords,
    # never returned by the API nor logged; services/oauth refreshes them before expiry.
    oauth_access_token: Mapped[str | None] = mapped_column(Text)
    oauth_refresh_token: Mapped[str | None] = mapped_column(Text)
    oauth_expires_at: Mapped[datetime | None]
    per_minute_limit: Mapped[int] = mapped_column(Integer, default=10)
    daily_limit: Mapped[int] = mapped_column(Integer, default=1000)
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    disconnected_reason: Mapped[str | None] = mapped_column(Text)
    # The earliest moment the next email of this mailbox may leave: the spacing that
    # keeps sends under the per-minute limit, shared by every worker through the row.
    next_send_at: Mapped[datetime | None]
    # When its last email was actually handed over: a late send must not let the next
    # one follow closer than the spacing, whichever worker sends it.
    last_handed_at: Mapped[datetime | None]
    # The worker that last claimed its emails, and when: other workers leave the mailbox
    # to it for a while after (services/delivery/affinity.py), so that its emails keep
    # leaving over that worker's one connection, and its spacing is known to that worker.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    owner: Mapped[User] = relationship(back_populates="mailboxes")

    def __repr__(self) -> str:
        return f"Mailbox(id={self.id!r}, from_email={self.from_email!r})"


# What a contact search compares (services/crm/contacts.py `search_condition`, as
# PostgreSQL receives it): the trigram index's expressions, the same text.
SEARCHED = ("email_key", "lower(firstname)", "lower(lastname)", "lower(company)")


class Contact(Base):
    __tablename__ = "contacts"
    # The contacts index's sorts (services/crm/contact_index.py): each walks its index in
    # order and stops after a page, instead of sorting every contact on each request. The
    # expressions are the index's query text exactly (literals, not bound parameters).
    __table_args__ = (
        Index(
            "ix_contacts_sort_name",
            text("lower(coalesce(lastname, ''))"),
            text("lower(coalesce(firstname, ''))"),
            "id",
        ),
        Index("ix_contacts_sort_company", text("lower(coalesce(company, ''))"), "id"),
        Index("ix_contacts_sort_created", "created_at", "id"),
        # The timezone filter and sort, and the list of zones (one seek per zone).
        Index("ix_contacts_sort_timezone", "timezone", "id"),
        # A zone's contacts by name (the index's default sort): a page of them, not all
        # of the zone's read and sorted (migration 0027).
        Index(
            "ix_contacts_timezone_name",
            "timezone",
            text("lower(coalesce(lastname, ''))"),
            text("lower(coalesce(firstname, ''))"),
            "id",
        ),
        # The search (`LIKE '%word%'` on each of these, services/crm/contacts.py): pg_trgm's
        # GIN index, on PostgreSQL where the server has the extension (migration 0028).
        Index(
            "ix_contacts_search_trgm",
            *(literal_column(e) for e in SEARCHED),
            postgresql_using="gin",
            postgresql_ops=dict.fromkeys(SEARCHED, "gin_trgm_ops"),
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    # Lower-cased address: the identity used for de-duplication and reply matching.
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    firstname: Mapped[str | None] = mapped_column(String(100))
    lastname: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    jobtitle: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    timezone: Mapped[str | None] = mapped_column(String(64))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    bounced_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BlockedAddress(Base):
    """An address ("ann@corp.com") or a whole domain ("@corp.com") never to be enrolled."""

    __tablename__ = "blocked_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    pattern: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime]


class Sequence(Base):
    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Shared playbooks (docs/content.md): a folder name, who else may use or edit
    # it (Sharing), and whether it is offered as a template to create sequences from.
    folder: Mapped[str | None] = mapped_column(String(100), index=True)
    sharing: Mapped[Sharing] = mapped_column(
        StrEnumType(Sharing), default=Sharing.TEAM_USE, server_default="team_use"
    )
    is_template: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    steps: Mapped[list[SequenceStep]] = relationship(
        back_populates="sequence",
        order_by="SequenceStep.position",
        cascade="all, delete-orphan",
    )


class SequenceStep(Base):
    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(20))
    delay_days: Mapped[int] = mapped_column(Integer, default=0)
    delay_hours: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    thread_with_step: Mapped[int | None] = mapped_column(Integer)
    task_type: Mapped[str | None] = mapped_column(String(20))
    task_title: Mapped[str | None] = mapped_column(Text)
    task_notes: Mapped[str | None] = mapped_column(Text)
    task_priority: Mapped[str | None] = mapped_column(String(20))
    continue_without_completing: Mapped[bool] = mapped_column(Boolean, default=False)
    # A/B variants [{"label", "subject", "body"}] and the winner rule (domain/variants.py).
    variants: Mapped[list[Any] | None] = mapped_column(JSON)
    winner_after: Mapped[int | None] = mapped_column(Integer)
    # The library template the step uses by reference (its subject and body are a copy
    # kept current when the template is edited); NULL for a step typed inline or copied.
    # No foreign key: adding one rebuilds the table on SQLite; templates are archived,
    # never deleted.
    template_id: Mapped[int | None] = mapped_column(Integer, index=True)

    sequence: Mapped[Sequence] = relationship(back_populates="steps")


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        # A contact is live in a given sequence at most once, whatever the account allows.
        Index(
            "uq_enrollments_live_contact_sequence",
            "contact_id",
            "sequence_id",
            unique=True,
            sqlite_where=text("state IN ('active', 'paused')"),
            postgresql_where=text("state IN ('active', 'paused')"),
        ),
        Index("ix_enrollments_enrolled_by_at", "enrolled_by_id", "enrolled_at"),
        # Reports over a period: enrollments made in it, and those that ended in it.
        Index("ix_enrollments_enrolled_at", "enrolled_at"),
        Index("ix_enrollments_ended_at", "ended_at"),
        # Whether a contact was ever in a sequence (the re-enrollment rule "once").
        Index("ix_enrollments_sequence_contact", "sequence_id", "contact_id"),
        # /metrics counts enrollments by state from this index, not from the rows.
        Index("ix_enrollments_state", "state", "needs_attention"),
        # A state's enrollments newest first (the enrollments page and API): a page of
        # this index's range, not every live enrollment sorted.
        Index("ix_enrollments_state_id", "state", "id"),
        # A sequence's enrollments in a state newest first (its page's running list) and
        # its live ones (the warning about mailboxes without reply detection): a range
        # of this index, not every active enrollment crossed with the sequence's (0029).
        Index("ix_enrollments_sequence_state_id", "sequence_id", "state", "id"),
        # Out-of-office pauses waiting to end: the poller's lookup touches only those.
        Index(
            "ix_enrollments_resume_at",
            "resume_at",
            sqlite_where=text("resume_at IS NOT NULL"),
            postgresql_where=text("resume_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    # Found by ix_enrollments_sequence_contact and ix_enrollments_sequence_state_id,
    # which lead with it: an index of its own was one more to write at every change of
    # an enrollment's row (migration 0030).
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"), index=True)
    enrolled_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    timezone: Mapped[str] = mapped_column(String(64))
    state: Mapped[EnrollmentState] = mapped_column(
        StrEnumType(EnrollmentState), default=EnrollmentState.ACTIVE
    )
    reason: Mapped[UnenrollReason | None] = mapped_column(StrEnumType(UnenrollReason, 50))
    reason_detail: Mapped[str | None] = mapped_column(Text)
    start_step: Mapped[int] = mapped_column(Integer, default=1)
    # The sequence as it was at enrollment, with this contact's edits applied: editing
    # the sequence later never changes an enrollment in flight.
    steps_snapshot: Mapped[list[Any]] = mapped_column()
    settings_snapshot: Mapped[dict[str, Any]] = mapped_column()
    token_values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bulk: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a step failed or its outcome is unknown: a person should look.
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    send_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    paused_at: Mapped[datetime | None]
    # An out-of-office pause ends by itself at this time (the poller resumes it).
    resume_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # The signal (reply, bounce, meeting, ...) that ended or paused it, when one did.
    # No foreign key: email_events already points at enrollments, and the pair would
    # make each table depend on the other; both go together when a contact is deleted.
    cause_event_id: Mapped[int | None] = mapped_column(Integer)
    # The company, deal, ticket or custom record it was enrolled from, if any. No
    # foreign key: adding one to an existing SQLite table rebuilds it, and dropping the
    # old copy under foreign_keys=ON would cascade into step_runs. Deleting a record
    # clears it (services/crm/records.py).
    source_record_id: Mapped[int | None] = mapped_column(Integer, index=True)

    contact: Mapped[Contact] = relationship()
    sequence: Mapped[Sequence] = relationship()
    mailbox: Mapped[Mailbox] = relationship()
    step_runs: Mapped[list[StepRun]] = relationship(
        back_populates="enrollment", order_by="StepRun.step_position"
    )


class StepRun(Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        # The backbone of "sent at most once, ever": one run per step of an enrollment.
        UniqueConstraint("enrollment_id", "step_position"),
        Index(
            "ix_step_runs_due",
            "due_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_step_runs_mailbox_due",
            "mailbox_id",
            "due_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # Due or scheduled runs held for a reason (rate limit, window, disconnected
        # mailbox...): what /metrics counts by reason, a few among the pending.
        Index(
            "ix_step_runs_waiting",
            "mailbox_id",
            "wait_reason",
            "due_at",
            sqlite_where=text("status = 'pending' AND wait_reason IS NOT NULL"),
            postgresql_where=text("status = 'pending' AND wait_reason IS NOT NULL"),
        ),
        Index(
            "ix_step_runs_lease",
            "locked_until",
            sqlite_where=text("status = 'sending'"),
            postgresql_where=text("status = 'sending'"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    # Copied from the enrollment so that claims per mailbox are one index range scan.
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    step_position: Mapped[int] = mapped_column(Integer)
    step_type: Mapped[str] = mapped_column(String(20))
    # The first step of a bulk enrollment: throttled to 3 per minute per mailbox.
    bulk_first: Mapped[bool] = mapped_column(Boolean, default=False)
    # A manual email whose task was completed: its content is final, the engine sends it.
    send_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[StepRunStatus] = mapped_column(
        StrEnumType(StepRunStatus), default=StepRunStatus.PENDING
    )
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(100))
    wait_reason: Mapped[StepWaitReason | None] = mapped_column(StrEnumType(StepWaitReason, 50))
    last_error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The A/B variant this enrollment got at this step (its snapshot's), or null.
    variant: Mapped[str | None] = mapped_column(String(1))

    enrollment: Mapped[Enrollment] = relationship(back_populates="step_runs")


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_owner_status_due", "owner_id", "status", "due_at"),
        Index("ix_tasks_outcome_logged", "outcome", "logged_at"),
        # Reports over a period: tasks done in it, and tasks that fell due in it.
        Index("ix_tasks_completed_at", "completed_at"),
        Index("ix_tasks_due_at", "due_at"),
        # The worker's reminder lookup reads only reminders not yet sent, not every task.
        Index(
            "ix_tasks_reminder_due",
            "remind_at",
            sqlite_where=text("reminded_at IS NULL AND status = 'open'"),
            postgresql_where=text("reminded_at IS NULL AND status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(20), default="none")
    status: Mapped[TaskStatus] = mapped_column(StrEnumType(TaskStatus), default=TaskStatus.OPEN)
    due_at: Mapped[datetime]
    draft_subject: Mapped[str | None] = mapped_column(Text)
    draft_body: Mapped[str | None] = mapped_column(Text)
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # What was logged when it was done (docs/tasks.md): the outcome key, built in
    # (domain/enums.py CallOutcome, LinkedInTouch) or the team's (task_outcomes).
    outcome: Mapped[str | None] = mapped_column(String(50))
    duration_seconds: Mapped[int | None]
    outcome_notes: Mapped[str | None] = mapped_column(Text)
    logged_at: Mapped[datetime | None]


class TaskOutcome(Base):
    """A team's own task outcome, on top of the built-in ones; admins manage them."""

    __tablename__ = "task_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    task_type: Mapped[str] = mapped_column(String(20))
    ends_enrollment: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_mailbox_sent", "mailbox_id", "sent_at"),
        # Reports over a period read the emails sent in it, whoever sent them.
        Index("ix_messages_sent_at", "sent_at"),
        # The outbox's failed emails (and the API's ?status=), newest first: a page of
        # this index's range instead of a walk over every email ever sent.
        Index("ix_messages_status_id", "status", "id"),
        # When a contact was last emailed (the enrollment rule "days since last emailed").
        Index("ix_messages_contact_sent", "contact_id", "sent_at"),
        # The retention job's lookup: only messages that still hold their bodies.
        Index(
            "ix_messages_bodies_kept",
            "created_at",
            sqlite_where=text("body_removed_at IS NULL"),
            postgresql_where=text("body_removed_at IS NULL"),
        ),
        # Sends in flight or awaiting review, by mailbox: what /metrics counts.
        Index(
            "ix_messages_unsettled",
            "mailbox_id",
            "status",
            sqlite_where=text("status IN ('handing', 'unknown')"),
            postgresql_where=text("status IN ('handing', 'unknown')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), unique=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    # Found by ix_messages_contact_sent, which leads with it (migration 0030).
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[str | None] = mapped_column(Text)
    from_email: Mapped[str] = mapped_column(String(320))
    to_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    # Random public name of the message in its unsubscribe, open and click links
    # (domain/link_tokens.py); null for messages composed before tracking existed.
    tracking_id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
    # The click-tracked URLs, by the index their redirect token carries: only these can
    # be redirect targets, so a link can never be made to point anywhere else.
    links: Mapped[list[Any] | None] = mapped_column()
    # prepared -> handing -> sent | failed | unknown; back to prepared on a retry.
    status: Mapped[MessageStatus] = mapped_column(
        StrEnumType(MessageStatus), default=MessageStatus.PREPARED
    )
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    handed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # A hard bounce came back for it: it was sent (status stays "sent"), and not received.
    bounced_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The retention policy replaced its bodies with a note (services/retention.py).
    body_removed_at: Mapped[datetime | None]
    # The A/B variant of its step that it carries, or null (shown in the outbox).
    variant: Mapped[str | None] = mapped_column(String(1))
    # The library template its step used by reference when the enrollment started (from
    # the snapshot), for per-template figures. No foreign key: adding one to messages
    # would rebuild the table on SQLite; archived templates are never deleted.
    template_id: Mapped[int | None] = mapped_column(Integer, index=True)


class DeliveryAttempt(Base):
    """Every try at handing a message over, with the server's answer."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[DeliveryOutcome] = mapped_column(StrEnumType(DeliveryOutcome))
    code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class EmailEvent(Base):
    __tablename__ = "email_events"
    # The retention job deletes old opens and clicks: a range of this index per kind.
    __table_args__ = (Index("ix_email_events_kind_occurred", "kind", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EventKind] = mapped_column(StrEnumType(EventKind, 30))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    # Makes an event seen twice count once (provider event id, or a derived key).
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    # An admin undid it (posted by mistake): kept for the record, its marks cleared.
    revoked_at: Mapped[datetime | None]
    # The event that caused this one (a complaint causes the contact's unsubscribe);
    # no foreign key, like enrollments.cause_event_id (a plain ADD COLUMN on SQLite).
    cause_event_id: Mapped[int | None] = mapped_column(Integer, index=True)


class DkimKey(Base):
    """A sending domain's DKIM key: the private half sealed like every other secret
    (services/accounts/keys.py), the public half published as `selector._domainkey`."""

    __tablename__ = "dkim_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)  # lower-case
    selector: Mapped[str] = mapped_column(String(63))
    private_key: Mapped[str] = mapped_column(Text)  # sealed PEM
    public_key: Mapped[str] = mapped_column(Text)  # base64 DER, the DNS record's p=
    created_at: Mapped[datetime]


class OAuthState(Base):
    """A connect started and not yet come back: the `state` the provider echoes, bound to
    the user who started it, with the PKCE verifier that only this server knows. Used
    once (deleted when the callback arrives) and refused after `expires_at`."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[OAuthProvider] = mapped_column(StrEnumType(OAuthProvider))
    code_verifier: Mapped[str] = mapped_column(_SEALED_500)  # sealed
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AppSecret(Base):
    """Keys the installation generates for itself once (the link-signing key), shared by
    every process through the database rather than a file only one host can read."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200).with_variant(Text(), "postgresql"))  # sealed
    created_at: Mapped[datetime]


class LoginFailure(Base):
    """One failed sign-in: the brake counts these per account and client address, in the
    database so that it holds across processes and restarts."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key", "account", "address", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(320))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)


class InboxCursor(Base):
    """How far the poller has read one folder of a mailbox.

    IMAP UIDs only mean something together with the folder's UIDVALIDITY: when that
    changes, the server renumbered the folder and the cursor starts again.
    """

    __tablename__ = "inbox_cursors"
    __table_args__ = (UniqueConstraint("mailbox_id", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    polled_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(index=True)


class Suppression(Base):
    """An erased contact's address, kept only as a keyed hash (HMAC-SHA-256 of the
    normalised address under a key derived from the link-signing key), so that a later
    import, API call or paste cannot bring the person back by accident while the
    address itself is gone (services/crm/suppressions.py, docs/contact-data.md)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The erased contact's id (no personal data): ties it to the erasure's audit entry.
    contact_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class JobMark(Base):
    """When a clocked job of the worker last finished (the retention job runs at most
    once per interval, whichever worker's tick gets to it)."""

    __tablename__ = "job_marks"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    ran_at: Mapped[datetime]


class Webhook(Base):
    """An admin's subscription: POST these event types to this URL, signed with `secret`.

    The secret is kept as given (it signs every delivery, so it cannot be hashed) and is
    shown once, when the webhook is created; the API never returns it again.
    """

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column()
    secret: Mapped[str] = mapped_column(String(100).with_variant(Text(), "postgresql"))  # sealed
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one webhook: written in the transaction of the change it reports
    (so it exists exactly when the change does), sent later by the dispatcher."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        # /metrics counts deliveries by status from this index, not from the payloads.
        Index("ix_webhook_deliveries_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    event_type: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column()
    # pending -> delivered | failed
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        StrEnumType(WebhookDeliveryStatus), default=WebhookDeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """Every POST of a delivery, with the receiver's status code or the error."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


# --- records, associations, lists, automation (issue 7) ------------------------------


class ObjectType(Base):
    """A kind of record: the built-ins (company, deal, ticket) seeded by the migration,
    and custom types admins define at run time. `properties` declares each property's
    name, label and type (string, number, date, bool, enum with options)."""

    __tablename__ = "object_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    plural: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    properties: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class Record(Base):
    __tablename__ = "records"
    __table_args__ = (Index("ix_records_type_id", "type_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("object_types.id"))
    name: Mapped[str] = mapped_column(String(300))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Association(Base):
    """A record ↔ contact link; at most one primary contact per record."""

    __tablename__ = "associations"
    __table_args__ = (
        UniqueConstraint("record_id", "contact_id"),
        Index(
            "uq_associations_primary",
            "record_id",
            unique=True,
            sqlite_where=text("is_primary"),
            postgresql_where=text("is_primary"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ContactList(Base):
    """Static (members added by hand) or active (members are the contacts matching
    `filters`, kept current in the transaction of every change that could matter)."""

    __tablename__ = "contact_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ListKind] = mapped_column(StrEnumType(ListKind))
    filters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ListMember(Base):
    __tablename__ = "list_members"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]


class AutomationRule(Base):
    """When `trigger` happens to a contact (and `conditions` hold), do `action` as `user`.

    `cursor` is the last automation event this rule has looked at: a rule acts only on
    events after it was switched on, and each once. `resume_at` holds a rule back after
    its user's daily enrollment limit was reached.
    """

    __tablename__ = "automation_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sequence_id: Mapped[int | None] = mapped_column(ForeignKey("sequences.id"), index=True)
    trigger: Mapped[dict[str, Any]] = mapped_column()
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    action: Mapped[dict[str, Any]] = mapped_column()
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    resume_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AutomationEvent(Base):
    """Something that happened to a contact, written in the transaction of the change.

    `depth` and `chain` carry causality: an event caused by a rule's action has the
    depth of its cause plus one and the rule ids that led to it, so a rule never acts
    on what it caused itself and no chain grows past a fixed depth.
    """

    __tablename__ = "automation_events"
    # A rule reads the events of its trigger's type after its cursor.
    __table_args__ = (Index("ix_automation_events_type", "type", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[AutomationEventType] = mapped_column(StrEnumType(AutomationEventType, 30))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    chain: Mapped[list[Any]] = mapped_column(default=list)
    occurred_at: Mapped[datetime]


class AutomationRun(Base):
    """What a rule did for one event: the dedupe key (rule, event) makes it act once."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_id"),
        Index("ix_automation_runs_rule", "rule_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("automation_events.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    outcome: Mapped[AutomationOutcome] = mapped_column(StrEnumType(AutomationOutcome))
    code: Mapped[str | None] = mapped_column(String(50))
    message: Mapped[str | None] = mapped_column(Text)
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="SET NULL")
    )
    at: Mapped[datetime]


class ListEnrollJob(Base):
    """A whole list enrolled in batches by the worker; the progress resource of the API."""

    __tablename__ = "list_enroll_jobs"
    # The worker looks for running jobs every tick; finished ones pile up.
    __table_args__ = (
        Index(
            "ix_list_enroll_jobs_running",
            "id",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("contact_lists.id", ondelete="CASCADE"))
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # running -> done | failed; `resume_at` while held back by the daily limit.
    status: Mapped[ListJobStatus] = mapped_column(
        StrEnumType(ListJobStatus), default=ListJobStatus.RUNNING
    )
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    refusals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    resume_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WorkerHeartbeat(Base):
    """A running worker's last sign of life, and what it counted (docs/operations.md).

    Each worker writes its own row at most every few seconds from its tick: when it last
    ticked, for /readyz and the "worker not ticking" alert, and a snapshot of its
    counters and histograms, so /metrics — served by any web process, on any host —
    reports every worker without scraping each one. Rows of workers gone for a day are
    deleted by the next heartbeat.
    """

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the worker id in claims
    started_at: Mapped[datetime]
    last_tick_at: Mapped[datetime] = mapped_column(index=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TaskDigest(Base):
    """One user's daily task digest for one local day: the unique key is what makes it
    once per user and day, whichever worker gets there first (migration 0017).
    `message_id` is the digest's message (no foreign key: a clean stop deletes an
    unsent message and puts the digest back to pending)."""

    __tablename__ = "task_digests"
    __table_args__ = (
        UniqueConstraint("user_id", "local_date", name="uq_task_digests_user_day"),
        # The claim's lookup: only digests still waiting for their mailbox.
        Index(
            "ix_task_digests_pending",
            "mailbox_id",
            "due_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    local_date: Mapped[date] = mapped_column(Date)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    status: Mapped[DigestStatus] = mapped_column(StrEnumType(DigestStatus))
    task_count: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]


class StepVariantWinner(Base):
    """The variant that won a step's winner rule: when, and on which figures. Keyed by
    step position (as the step statistics are), since saving a sequence replaces its
    step rows; a save that changes that step's variants or rule clears it."""

    __tablename__ = "step_variant_winners"
    __table_args__ = (UniqueConstraint("sequence_id", "step_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    step_position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(1))
    decided_at: Mapped[datetime]
    # {"A": {"sent": n, "replied": n}, ...} when it was decided
    tallies: Mapped[dict[str, Any]] = mapped_column(JSON)


class SequenceCount(Base):
    """A change to one of a sequence's figures (domain/counters.py names them): written
    by the service that changes the counted fact, in its transaction, and summed on read
    (services/counters). Append-only, so that workers sending for the same sequence
    never wait on one counter row; the fold job sums old deltas into one row per key.
    No foreign key: sequences are archived, never deleted, and a fold deletes and
    inserts these rows at a rate a key's checks would only slow down."""

    __tablename__ = "sequence_counts"
    # A sequence's figures (day NULL), or its days from a date on: one range of this
    # index, whatever the size of the installation or of the sequence.
    __table_args__ = (Index("ix_sequence_counts_sequence_day", "sequence_id", "day"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    sequence_id: Mapped[int] = mapped_column(Integer)
    step_position: Mapped[int] = mapped_column(Integer)  # 0: the sequence as a whole
    variant: Mapped[str] = mapped_column(String(1))  # '': none
    day: Mapped[date | None] = mapped_column(Date)  # UTC; only the daily series has one
    key: Mapped[str] = mapped_column(String(80))
    n: Mapped[int] = mapped_column(BigInteger)


class EmailTemplate(Base):
    """A named email of the team's library (docs/content.md): steps use it by reference
    (kept current) or copy it."""

    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    folder: Mapped[str | None] = mapped_column(String(100))
    sharing: Mapped[Sharing] = mapped_column(StrEnumType(Sharing), default=Sharing.PRIVATE)
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Snippet(Base):
    """A short named block of text, inserted (copied) where it is typed as `#name`."""

    __tablename__ = "snippets"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text)
    sharing: Mapped[Sharing] = mapped_column(StrEnumType(Sharing), default=Sharing.PRIVATE)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
