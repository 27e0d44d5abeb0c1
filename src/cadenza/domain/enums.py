"""Closed vocabularies shared by every layer; stored as their string values."""

from enum import StrEnum


class StepType(StrEnum):
    EMAIL = "email"
    MANUAL_EMAIL = "manual_email"
    TASK = "task"


class TaskType(StrEnum):
    CALL = "call"
    TODO = "todo"
    LINKEDIN = "linkedin"


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


class EventKind(StrEnum):
    """Signals recorded in email_events: from the inbox, the events API or a provider."""

    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"  # data.hard tells a permanent failure from a temporary one
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MEETING_BOOKED = "meeting_booked"
