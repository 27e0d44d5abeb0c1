"""Closed vocabularies shared by every layer; stored as their string values.

Every state or kind that crosses a layer is a member of one of these, never a bare
string: a typo then fails at import or at the database boundary (store/types.py
refuses a value outside its enum) instead of silently matching nothing. They are
`StrEnum`s, so a member equals, hashes and formats as its value: JSON payloads,
templates and old rows read exactly as before. docs/architecture/enums.md lists them
and the few strings that deliberately stay plain.
"""

from enum import StrEnum


class StepType(StrEnum):
    EMAIL = "email"
    MANUAL_EMAIL = "manual_email"
    TASK = "task"


class TaskType(StrEnum):
    CALL = "call"
    TODO = "todo"
    LINKEDIN = "linkedin"


class TaskKind(StrEnum):
    """tasks.type: a task step's TaskType, or EMAIL for the task of a manual email step
    (its draft is sent when the task is completed)."""

    CALL = TaskType.CALL.value
    TODO = TaskType.TODO.value
    LINKEDIN = TaskType.LINKEDIN.value
    EMAIL = "email"


class TaskPriority(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class FollowUpDays(StrEnum):
    EVERY_DAY = "every_day"
    WEEKDAYS = "weekdays"
    BUSINESS_DAYS = "business_days"


class UnenrollOnReply(StrEnum):
    CONTACT = "contact"
    COMPANY = "company"


class EnrollmentState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    UNENROLLED = "unenrolled"


# An enrollment in one of these states holds the contact's "one sequence at a time" slot.
LIVE_ENROLLMENT_STATES = (EnrollmentState.ACTIVE, EnrollmentState.PAUSED)


class StepRunStatus(StrEnum):
    PENDING = "pending"  # waiting for its due time; the engine may claim it
    PAUSED = "paused"  # enrollment paused; not claimable
    SENDING = "sending"  # claimed by a worker under a lease
    WAITING_TASK = "waiting_task"  # task created; enrollment waits for its completion
    SENT = "sent"
    DONE = "done"  # task completed / skipped, or continued without completion
    FAILED = "failed"
    UNKNOWN = "unknown"  # outcome unknown after a crash: shown for review, never resent
    CANCELLED = "cancelled"


class TimelineMark(StrEnum):
    """What an enrollment's timeline shows besides a step run's own status; never stored."""

    PROJECTED = "projected"  # a step not scheduled yet
    BOUNCED = "bounced"  # a sent email that hard-bounced (its run stays "sent": it did leave)


class StepWaitReason(StrEnum):
    """Why a pending step run is not sent at its due time (step_runs.wait_reason)."""

    RATE_LIMIT = "rate_limit"  # the mailbox's per-minute limit
    DAILY_LIMIT = "daily_limit"  # the mailbox's 24-hour limit
    SEND_WINDOW = "send_window"  # outside the sequence's send window
    MAILBOX_DISCONNECTED = "mailbox_disconnected"
    RETRY = "retry"  # a temporary failure: tried again later


class EnrollWarningCode(StrEnum):
    """What an enrollment may go ahead with but the person should know (each result's
    `warnings`); the web dialog asks for confirmation before enrolling."""

    REPLIES_NOT_DETECTED = "replies_not_detected"  # the mailbox's inbox is not read
    RULE_OVERRIDDEN = "rule_overridden"  # an enrollment rule was set aside for this contact
    RESTARTED = "restarted"  # the contact's live enrollment in this sequence ends (any_time)


class UnenrollReason(StrEnum):
    """Why an enrollment ended early (enrollments.reason, with state "unenrolled")."""

    MANUAL = "manual"  # a person (web, API, CLI)
    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    COMPANY_REPLIED = "company_replied"  # someone else at the contact's company replied
    COMPLAINED = "complained"
    SEND_FAILED = "send_failed"
    AUTOMATION = "automation"  # an automation rule's "unenroll" action (not for people to give)
    TASK_OUTCOME = (
        "task_outcome"  # a logged call/touch outcome the sequence ends on (not for people)
    )


class PauseReason(StrEnum):
    """Why a paused enrollment waits; derived (resume_at set or not), never stored."""

    OUT_OF_OFFICE = "out_of_office"  # resumes by itself at resume_at
    MANUAL = "manual"  # waits until someone resumes it


class MessageStatus(StrEnum):
    """messages.status: prepared -> handing -> sent | failed | unknown; back to
    prepared on a retry. A hard bounce does not change it (the email did leave)."""

    PREPARED = "prepared"
    HANDING = "handing"  # being handed to the server, by the worker holding the run's lease
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # handed over, no answer: never resent without a person's word


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class UserRole(StrEnum):
    ADMIN = "admin"  # everything
    MEMBER = "member"  # own mailboxes; enrolls when granted the enroll permission
    VIEWER = "viewer"  # reads only


class MailTransport(StrEnum):
    CAPTURE = "capture"
    SMTP = "smtp"


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class MailboxAuth(StrEnum):
    """How a mailbox logs in to its SMTP and IMAP servers (mailboxes.auth_method)."""

    PASSWORD = "password"  # the stored (sealed) passwords, AUTH PLAIN/LOGIN
    OAUTH2 = "oauth2"  # an OAuth 2.0 access token, SASL XOAUTH2 (services/oauth)


class OAuthProvider(StrEnum):
    """Where an OAuth mailbox's tokens come from (domain/oauth_providers.py presets)."""

    GOOGLE = "google"
    MICROSOFT = "microsoft"
    GENERIC = "generic"  # any OAuth 2.0 / OpenID Connect provider, configured by env


class EventKind(StrEnum):
    """Signals recorded in email_events: from the inbox, the events API or a provider."""

    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"  # data.hard tells a permanent failure from a temporary one
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MEETING_BOOKED = "meeting_booked"
    OPEN = "open"  # the tracking pixel was fetched (data.flagged: a scanner or too early)
    CLICK = "click"  # a tracked link was followed


class InboundVerdict(StrEnum):
    """What the inbox poller made of one received message (counted per poll)."""

    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"  # a hard bounce
    SOFT_BOUNCE = "soft_bounce"  # a temporary failure: recorded, changes nothing
    UNRELATED = "unrelated"  # ours, or naming nothing we sent nor anyone we know
    UNREADABLE = "unreadable"  # could not be parsed: skipped (logged)


# What a person opening or clicking an email leaves behind (tracking, engagement).
ENGAGEMENT_KINDS = (EventKind.OPEN, EventKind.CLICK)


class ContactStatus(StrEnum):
    """The contact list's status filter (web page, API, CLI); derived, never stored."""

    REACHABLE = "reachable"  # an address that may be sent to: not bounced, unsubscribed, blocked
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    NO_EMAIL = "no_email"


class ListKind(StrEnum):
    STATIC = "static"  # members added by hand
    ACTIVE = "active"  # members are the contacts matching the list's filters


class ListJobStatus(StrEnum):
    """list_enroll_jobs.status: running -> done | failed."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class WebhookDeliveryStatus(StrEnum):
    """webhook_deliveries.status: pending -> delivered | failed (after the last attempt)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEvent(StrEnum):
    """What a webhook may subscribe to (and what services/events_out/webhooks.emit sends)."""

    ENROLLED = "enrolled"
    STEP_SENT = "step_sent"
    FINISHED = "finished"
    PAUSED = "paused"
    RESUMED = "resumed"
    UNENROLLED = "unenrolled"  # every early end, with its reason; the next ones: common reasons
    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    # An OAuth mailbox whose token refresh was refused (consent revoked, account gone):
    # its steps wait until the owner reconnects it.
    MAILBOX_DISCONNECTED = "mailbox.disconnected"


class AutomationOutcome(StrEnum):
    """What a rule did for one event (automation_runs.outcome); `code` says why."""

    ENROLLED = "enrolled"
    UNENROLLED = "unenrolled"
    REFUSED = "refused"  # the enrollment rules said no for this contact
    SKIPPED = "skipped"  # conditions, loop or depth guard, permission, nothing live
    FAILED = "failed"  # the whole batch failed


class AutomationEventType(StrEnum):
    """automation_events.type: what happened to a contact, as the rules read it."""

    CONTACT_CREATED = "contact_created"
    PROPERTY_CHANGED = "property_changed"
    LIST_ADDED = "list_added"
    LIST_REMOVED = "list_removed"
    ENROLLED = "enrolled"
    ENROLLMENT_ENDED = "enrollment_ended"  # finished or unenrolled, with its state and reason


class AutomationTrigger(StrEnum):
    """A rule's trigger.type; the enrollment ones are all read from ENROLLMENT_ENDED but
    the last three, which wait for an unenrollment for the reason of the same name."""

    CONTACT_CREATED = "contact_created"
    PROPERTY_CHANGED = "property_changed"
    LIST_ADDED = "list_added"
    LIST_REMOVED = "list_removed"
    ENROLLED = "enrolled"
    ENROLLMENT_FINISHED = "enrollment_finished"
    UNENROLLED = "unenrolled"
    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    BOUNCED = "bounced"


class ReminderTiming(StrEnum):
    """When a user is reminded of a task (a sequence with task reminders on): never, when
    it falls due, or some minutes before (docs/task-reminders.md)."""

    NONE = "none"
    AT_DUE = "at_due"
    BEFORE = "before"


class DigestStatus(StrEnum):
    """A user's daily task digest for one local day: waiting for its mailbox's send slot,
    claimed (its message row says what became of it), or not sent and why."""

    PENDING = "pending"
    CLAIMED = "claimed"
    NO_TASKS = "no_tasks"
    NO_MAILBOX = "no_mailbox"


class CallOutcome(StrEnum):
    """The built-in outcomes of a call task (tasks.outcome); a team adds its own
    (task_outcomes). docs/tasks.md."""

    CONNECTED = "connected"
    LEFT_VOICEMAIL = "left_voicemail"
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"
    BUSY = "busy"
    MEETING_BOOKED = "meeting_booked"
    NOT_INTERESTED = "not_interested"


class LinkedInTouch(StrEnum):
    """What a LinkedIn task did (tasks.outcome); a team adds its own (task_outcomes)."""

    CONNECTION_REQUEST = "connection_request"
    MESSAGE = "message"
    INMAIL = "inmail"
    VIEWED_PROFILE = "viewed_profile"
    ENGAGED_WITH_POST = "engaged_with_post"


class TaskDue(StrEnum):
    """The queue's due filter, read in the viewer's own day."""

    OVERDUE = "overdue"
    TODAY = "today"
    UPCOMING = "upcoming"


class TaskSort(StrEnum):
    DUE = "due"  # earliest due moment first
    LOCAL = "local"  # by the due time on the contact's own clock (call in their hours)


class Sharing(StrEnum):
    """Who besides its owner and the admins may use or change a sequence, an email
    template or a snippet: nobody, the team to use it, or the team to use and edit it
    (domain/policy.py says which actions each opens; docs/content.md)."""

    PRIVATE = "private"  # its owner and the admins only
    TEAM_USE = "team_use"  # everyone signed in sees it, enrolls into it and clones it
    TEAM_EDIT = "team_edit"  # ... and members edit it too


class ReportBy(StrEnum):
    """What a team report has one row per (docs/reports.md). Templates join this list
    when templates exist: a grouping is one key column in services/analytics/reports.py."""

    SEQUENCE = "sequence"
    REP = "rep"
    STEP = "step"  # the steps of one sequence (the report needs its sequence)


class RepBasis(StrEnum):
    """Whose work an enrollment counts as in a report by rep."""

    ENROLLED_BY = "enrolled_by"  # the user who enrolled the contact
    MAILBOX_OWNER = "mailbox_owner"  # the owner of the mailbox it sends from


class ExportRows(StrEnum):
    """The underlying rows a report can be exported with, as CSV."""

    ENROLLMENTS = "enrollments"  # with their outcomes (emails, replies, meetings, end)
    TASKS = "tasks"  # with their outcomes (call outcome, duration, notes)
    MESSAGES = "messages"  # with their events (opens, clicks, replies, bounces)


class Exclusivity(StrEnum):
    """A sequence's enrollment rule on other sequences (docs/enrollment.md, "Enrollment
    rules"): whether a contact live in it may be live in other sequences too."""

    NONE = "none"  # no rule: other sequences are the other sequences' business
    EXCLUSIVE = "exclusive"  # not live in another exclusive sequence (Outreach's way)
    ANY = "any"  # not live in any other sequence (HubSpot's way)


class Reenrollment(StrEnum):
    """A sequence's enrollment rule on its own past: when a contact may enter it again."""

    ONCE = "once"  # never again, once enrolled (whatever became of that enrollment)
    WHEN_NOT_LIVE = "when_not_live"  # again once the last enrollment ended
    ANY_TIME = "any_time"  # even while live: the live enrollment ends, a new one starts
