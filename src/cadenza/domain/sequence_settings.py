"""The follow-up settings of a sequence, validated once and shared by the schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import time
from typing import Any, TypeVar

import holidays

from cadenza.domain.enums import Exclusivity, FollowUpDays, Reenrollment, UnenrollOnReply
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.task_outcomes import check_key


def _parse_hhmm(value: str, field: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"{field} must be a time as HH:MM, got {value!r}"
        ) from None


@dataclass(frozen=True)
class SendWindow:
    """Local hours in which follow-ups may go out: [start, end), end after start."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"send window end {self.end:%H:%M} must be after its start {self.start:%H:%M}",
            )

    @classmethod
    def parse(cls, value: dict[str, str] | str | None) -> SendWindow | None:
        """Accepts {"start": "08:00", "end": "18:00"} or "08:00-18:00"; None means no window."""
        if value is None or value == "":
            return None
        if isinstance(value, str):
            parts = value.replace("–", "-").split("-")
            if len(parts) != 2:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR, f"send window must be HH:MM-HH:MM, got {value!r}"
                )
            value = {"start": parts[0].strip(), "end": parts[1].strip()}
        if not isinstance(value, dict) or set(value) != {"start", "end"}:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR, 'send window must be {"start": "HH:MM", "end": "HH:MM"}'
            )
        return cls(
            _parse_hhmm(value["start"], "send_window.start"),
            _parse_hhmm(value["end"], "send_window.end"),
        )

    def to_dict(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


MAX_AUTO_REPLY_PAUSE_DAYS = 90
MAX_MIN_DAYS_SINCE_EMAILED = 365


_Rule = TypeVar("_Rule", Exclusivity, Reenrollment)


def _enum_or_none(kind: type[_Rule], value: Any, name: str) -> _Rule | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"{name} must be one of {allowed} or null, got {value!r}"
        ) from None


def check_min_days(value: Any, name: str = "min_days_since_emailed") -> int | None:
    """A whole number of days, 0 (off) to MAX_MIN_DAYS_SINCE_EMAILED, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{name} must be a whole number of days")
    if not 0 <= value <= MAX_MIN_DAYS_SINCE_EMAILED:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{name} must be 0 (off) to {MAX_MIN_DAYS_SINCE_EMAILED}, got {value}",
        )
    return value


@dataclass(frozen=True)
class EnrollmentRules:
    """Who may enter a sequence, over the hard refusals (docs/enrollment.md, "Enrollment
    rules"). A sequence's own: None follows the installation's default
    (CADENZA_ENROLLMENT_*); `resolved` fills those in."""

    exclusivity: Exclusivity | None = None
    reenrollment: Reenrollment | None = None
    min_days_since_emailed: int | None = None  # 0: off

    KEYS = ("exclusivity", "reenrollment", "min_days_since_emailed")

    def __post_init__(self) -> None:
        check_min_days(self.min_days_since_emailed)

    @classmethod
    def from_dict(cls, data: Any) -> EnrollmentRules:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                "enrollment_rules must be an object: exclusivity, reenrollment, "
                "min_days_since_emailed",
            )
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"unknown enrollment rule(s): {', '.join(map(str, unknown))}",
                {"unknown": unknown},
            )
        return cls(
            exclusivity=_enum_or_none(Exclusivity, data.get("exclusivity"), "exclusivity"),
            reenrollment=_enum_or_none(Reenrollment, data.get("reenrollment"), "reenrollment"),
            min_days_since_emailed=data.get("min_days_since_emailed"),
        )

    def resolved(self, default: EnrollmentRules) -> EnrollmentRules:
        """These rules, with the installation's `default` where this sequence sets none."""
        return EnrollmentRules(
            exclusivity=self.exclusivity or default.exclusivity or Exclusivity.NONE,
            reenrollment=self.reenrollment or default.reenrollment or Reenrollment.WHEN_NOT_LIVE,
            min_days_since_emailed=(
                self.min_days_since_emailed
                if self.min_days_since_emailed is not None
                else default.min_days_since_emailed or 0
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "exclusivity": str(self.exclusivity) if self.exclusivity else None,
            "reenrollment": str(self.reenrollment) if self.reenrollment else None,
            "min_days_since_emailed": self.min_days_since_emailed,
        }


@dataclass(frozen=True)
class SequenceSettings:
    follow_up_days: FollowUpDays = FollowUpDays.EVERY_DAY
    holiday_country: str | None = None
    send_window: SendWindow | None = None
    thread_follow_ups: bool = True
    unenroll_on_reply: UnenrollOnReply = UnenrollOnReply.CONTACT
    unenroll_on_meeting: bool = True
    task_reminders: bool = False
    # Off unless a sequence asks: pixels and rewritten links cost deliverability and
    # privacy, and many recipients' clients block or prefetch them anyway.
    track_opens: bool = False
    track_clicks: bool = False
    # An out-of-office reply pauses the enrollment until the stated return date, or
    # for this many days when the text states none.
    auto_reply_pause_days: int = 7
    # The sender's signature goes at the end of every email whose template does not place
    # it with {{ sender.signature }} (HubSpot's default); nothing is added without one.
    append_signature: bool = True
    # The task outcomes that unenroll the contact when logged (docs/tasks.md); None: the
    # team's ending ones (meeting_booked, not_interested, and outcomes marked ending).
    unenroll_on_outcomes: tuple[str, ...] | None = None
    # Who may enter the sequence (not a follow-up setting: an enrollment request cannot
    # change them; a permitted user overrides them per contact instead).
    enrollment_rules: EnrollmentRules = field(default_factory=EnrollmentRules)

    def __post_init__(self) -> None:
        if (
            isinstance(self.auto_reply_pause_days, bool)
            or not isinstance(self.auto_reply_pause_days, int)
            or not 1 <= self.auto_reply_pause_days <= MAX_AUTO_REPLY_PAUSE_DAYS
        ):
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"auto_reply_pause_days must be a whole number, 1 to {MAX_AUTO_REPLY_PAUSE_DAYS}",
            )
        if self.follow_up_days is FollowUpDays.BUSINESS_DAYS and not self.holiday_country:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                "business_days needs holiday_country (an ISO 3166 code such as US or DE)",
            )
        if self.holiday_country and self.holiday_country not in holidays.list_supported_countries():
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"holiday_country {self.holiday_country!r} is not a supported country code",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SequenceSettings:
        data = dict(data or {})
        known = {
            "follow_up_days",
            "holiday_country",
            "send_window",
            "thread_follow_ups",
            "unenroll_on_reply",
            "unenroll_on_meeting",
            "task_reminders",
            "track_opens",
            "track_clicks",
            "auto_reply_pause_days",
            "append_signature",
            "unenroll_on_outcomes",
            "enrollment_rules",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"unknown sequence setting(s): {', '.join(unknown)}",
                {"unknown": unknown},
            )
        try:
            follow_up_days = FollowUpDays(data.get("follow_up_days", FollowUpDays.EVERY_DAY))
            unenroll_on_reply = UnenrollOnReply(
                data.get("unenroll_on_reply", UnenrollOnReply.CONTACT)
            )
        except ValueError as exc:
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
        country = data.get("holiday_country") or None
        return cls(
            follow_up_days=follow_up_days,
            holiday_country=country.upper() if isinstance(country, str) else country,
            send_window=SendWindow.parse(data.get("send_window")),
            thread_follow_ups=bool(data.get("thread_follow_ups", True)),
            unenroll_on_reply=unenroll_on_reply,
            unenroll_on_meeting=bool(data.get("unenroll_on_meeting", True)),
            task_reminders=bool(data.get("task_reminders", False)),
            track_opens=bool(data.get("track_opens", False)),
            track_clicks=bool(data.get("track_clicks", False)),
            auto_reply_pause_days=data.get("auto_reply_pause_days", 7),
            append_signature=bool(data.get("append_signature", True)),
            unenroll_on_outcomes=_outcome_keys(data.get("unenroll_on_outcomes")),
            enrollment_rules=EnrollmentRules.from_dict(data.get("enrollment_rules")),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["follow_up_days"] = str(self.follow_up_days)
        data["unenroll_on_reply"] = str(self.unenroll_on_reply)
        data["send_window"] = self.send_window.to_dict() if self.send_window else None
        # Left out when unset, so settings saved before it existed read back unchanged.
        if self.unenroll_on_outcomes is None:
            del data["unenroll_on_outcomes"]
        else:
            data["unenroll_on_outcomes"] = list(self.unenroll_on_outcomes)
        data["enrollment_rules"] = self.enrollment_rules.to_dict()
        return data


def _outcome_keys(value: Any) -> tuple[str, ...] | None:
    """A list of outcome keys (at most 50); unknown keys are kept: a team may add them later."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) > 50:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "unenroll_on_outcomes must be a list of outcome keys"
        )
    return tuple(dict.fromkeys(check_key(k, "unenroll_on_outcomes") for k in value))
