"""The enrollment choices on the command line: `cadenza enroll` and `cadenza lists enroll`
take the same options, read into the service's one `EnrollOptions`.

Follow-up settings are `--setting NAME=VALUE`, repeated; the names are the sequence
settings' own (`SequenceSettings`), so a new setting needs no new flag, and the values
are checked by the same code as the API's and the web dialog's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.enrollment.enroll import EnrollOptions

# The enrollment rules are the sequence's, not an enrollment's (`--override` sets them
# aside per contact instead).
SETTING_NAMES = tuple(n for n in SequenceSettings.__dataclass_fields__ if n != "enrollment_rules")

MAILBOX = typer.Option(None, "--mailbox", help="Send from this mailbox (if you have several).")
START_STEP = typer.Option(1, "--start-step", help="Start at this step.")
TIMEZONE = typer.Option(None, "--timezone", help="Run every step in this IANA time zone.")
SEND_AT = typer.Option(
    None,
    "--send-at",
    help="When step 1 goes out: ISO date-time; without an offset it is their local time.",
)
TOKEN = typer.Option(
    [],
    "--token",
    help="A value for a token a contact has none for, e.g. --token firstname=Sam (all contacts).",
)
OVERRIDE = typer.Option(
    [],
    "--override",
    help="Enroll this contact although an enrollment rule refuses it (in_another_sequence, "
    "enrolled_before, contacted_recently); repeat for several. Admins and users with the "
    "permission only; audited.",
)
SETTING = typer.Option(
    [],
    "--setting",
    help="A follow-up setting for these enrollments only, NAME=VALUE, e.g. "
    "--setting follow_up_days=weekdays --setting send_window=08:00-18:00. Names: "
    + ", ".join(SETTING_NAMES),
)


def parse_send_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"--send-at must be ISO 8601 such as 2026-12-01T09:00 (their local time) "
            f"or 2026-12-01T09:00+01:00, got {value!r}",
        ) from None


def _pairs(pairs: list[str], flag: str) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{flag} takes NAME=VALUE, got {pair!r}")
        found[name.strip()] = value
    return found


def _setting_value(text: str) -> Any:
    """Command-line text as the JSON value the API would take."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("", "none", "null"):
        return None
    if lowered.isdigit():
        return int(lowered)
    return text.strip()


def parse_settings(pairs: list[str]) -> dict[str, Any] | None:
    settings = {name: _setting_value(v) for name, v in _pairs(pairs, "--setting").items()}
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"unknown setting(s) {', '.join(unknown)}: use {', '.join(SETTING_NAMES)}",
        )
    return settings or None


def build(
    mailbox: int | None,
    start_step: int,
    timezone: str | None,
    send_at: str | None,
    token: list[str],
    setting: list[str],
) -> EnrollOptions:
    return EnrollOptions(
        mailbox_id=mailbox,
        start_step=start_step,
        timezone=timezone,
        send_at=parse_send_at(send_at),
        settings=parse_settings(setting),
        token_values=_pairs(token, "--token"),
    )
