"""Machine-readable error codes and the one exception type that carries them.

Every layer raises `CadenzaError`; the CLI prints `code: message`, the API answers
`{"error": {"code", "message", "details"}}` with `http_status`. Keeping the codes in
one enum stops the web, CLI and engine from inventing spellings of their own.
"""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # per contact, in an enrollment request
    CONTACT_NOT_FOUND = "contact_not_found"
    MISSING_EMAIL = "missing_email"
    INVALID_EMAIL = "invalid_email"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    BLOCKED = "blocked"
    ALREADY_ENROLLED = "already_enrolled"
    MISSING_TOKEN_VALUES = "missing_token_values"
    NO_ASSOCIATED_CONTACT = "no_associated_contact"
    NOT_ASSOCIATED = "not_associated"
    DAILY_ENROLLMENT_LIMIT = "daily_enrollment_limit"
    DUPLICATE_CONTACT = "duplicate_contact"
    INVALID_STEP_EDIT = "invalid_step_edit"
    # per contact: the enrollment rules (docs/enrollment.md), which may be overridden
    IN_ANOTHER_SEQUENCE = "in_another_sequence"
    ENROLLED_BEFORE = "enrolled_before"
    CONTACTED_RECENTLY = "contacted_recently"
    # whole request
    BULK_LIMIT_EXCEEDED = "bulk_limit_exceeded"
    SEQUENCE_NOT_FOUND = "sequence_not_found"
    SEQUENCE_HAS_NO_STEPS = "sequence_has_no_steps"
    SEQUENCE_ARCHIVED = "sequence_archived"
    INVALID_START_STEP = "invalid_start_step"
    INVALID_TIMEZONE = "invalid_timezone"
    SEND_AT_IN_PAST = "send_at_in_past"
    MAILBOX_NOT_FOUND = "mailbox_not_found"
    MAILBOX_REQUIRED = "mailbox_required"
    MAILBOX_NOT_YOURS = "mailbox_not_yours"
    MAILBOX_DISCONNECTED = "mailbox_disconnected"
    WARNINGS_NOT_CONFIRMED = "warnings_not_confirmed"  # the web dialog asks first
    NOT_DELIVERED_UNCONFIRMED = "not_delivered_unconfirmed"  # retrying an unknown send
    PERMISSION_DENIED = "permission_denied"
    OVERRIDE_NOT_ALLOWED = "override_not_allowed"  # overriding enrollment rules
    NO_CONTACTS = "no_contacts"
    ASSOCIATED_CONTACT_REQUIRED = "associated_contact_required"
    # other use cases
    VALIDATION_ERROR = "validation_error"
    INVALID_TEMPLATE = "invalid_template"
    UNSAFE_TEMPLATE = "unsafe_template"
    TEMPLATE_LIMIT = "template_limit"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID_STATE = "invalid_state"
    UNKNOWN_OUTCOME = "unknown_outcome"  # a task outcome neither built in nor the team's
    USER_NOT_FOUND = "user_not_found"
    ENROLLMENT_NOT_FOUND = "enrollment_not_found"
    TEMPLATE_NOT_FOUND = "template_not_found"
    SNIPPET_NOT_FOUND = "snippet_not_found"
    # HTTP
    UNAUTHENTICATED = "unauthenticated"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    CSRF_FAILED = "csrf_failed"
    BODY_TOO_LARGE = "body_too_large"
    # CSV import
    FILE_TOO_LARGE = "file_too_large"
    BAD_ENCODING = "bad_encoding"
    MISSING_HEADER = "missing_header"
    MALFORMED_CSV = "malformed_csv"
    # Outbound connections (webhooks, mailbox hosts)
    HOST_NOT_ALLOWED = "host_not_allowed"
    # A contact's data (docs/contact-data.md): an erased address is not added again
    SUPPRESSED = "suppressed"
    # Booking webhooks (Cal.com, Calendly): a forged, missing or unchecked signature; a stale one
    INVALID_SIGNATURE = "invalid_signature"
    SIGNATURE_EXPIRED = "signature_expired"


_HTTP_STATUS = {
    ErrorCode.CONTACT_NOT_FOUND: 404,
    ErrorCode.SEQUENCE_NOT_FOUND: 404,
    ErrorCode.MAILBOX_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.USER_NOT_FOUND: 404,
    ErrorCode.ENROLLMENT_NOT_FOUND: 404,
    ErrorCode.TEMPLATE_NOT_FOUND: 404,
    ErrorCode.SNIPPET_NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.MAILBOX_NOT_YOURS: 403,
    ErrorCode.OVERRIDE_NOT_ALLOWED: 403,
    ErrorCode.ALREADY_ENROLLED: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.SEQUENCE_ARCHIVED: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.SUPPRESSED: 409,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.TOO_MANY_ATTEMPTS: 429,
    ErrorCode.CSRF_FAILED: 403,
    ErrorCode.MAILBOX_REQUIRED: 422,
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.SIGNATURE_EXPIRED: 401,
}


class CadenzaError(Exception):
    """A refusal the user can act on: a stable code, a sentence, optional details."""

    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 422)

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
