"""Validation of the values a contact (or a user) is made of: email address and time zone."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email

from cadenza.domain.errors import CadenzaError, ErrorCode

# Fixed columns of a contact; every other imported or posted field is a custom property.
CONTACT_FIELDS = ("email", "firstname", "lastname", "company", "jobtitle", "phone", "timezone")


def normalize_email(address: str) -> str:
    """Syntax check only: no DNS lookup, so validation is fast, offline and deterministic."""
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise CadenzaError(
            ErrorCode.INVALID_EMAIL, f"{address!r} is not a valid email address: {exc}"
        ) from None
    return result.normalized


@lru_cache(maxsize=4096)
def is_valid_email(address: str) -> bool:
    """Whether `normalize_email` accepts the address. Enrolling checks every contact's
    stored address again (an address may have been stored before it was checked), a
    preview and then the enrollment itself check the same contacts, and the check is
    a pure function of the text: the answers are kept (a few thousand short strings)."""
    try:
        normalize_email(address)
    except CadenzaError:
        return False
    return True


def email_key(address: str) -> str:
    return address.lower()


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone name, exactly as the tz database spells it (e.g. Europe/Berlin)."""
    if name not in _known_zones():
        raise CadenzaError(
            ErrorCode.INVALID_TIMEZONE,
            f"{name!r} is not an IANA time zone (examples: Europe/Berlin, America/New_York, UTC)",
            {"timezone": name},
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CadenzaError(
            ErrorCode.INVALID_TIMEZONE, f"{name!r} is not an IANA time zone", {"timezone": name}
        ) from None


# Custom properties are the contact's free-form part: bounded so that one contact (or a
# CSV of them) cannot fill the database or make every template render slow.
MAX_PROPERTIES = 100
MAX_PROPERTY_CHARS = 10_000

_MAX_LENGTHS = {"firstname": 100, "lastname": 100, "company": 200, "jobtitle": 200, "phone": 50}


def clean_contact_input(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits posted or imported values into validated columns and custom properties.

    Blank strings mean "no value"; unknown keys become custom properties, which
    templates can read as `{{ contact.<key> }}`.
    """
    if not isinstance(data, dict):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "a contact must be an object")
    columns: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for raw_key, raw_value in data.items():
        key = str(raw_key).strip()
        if "\x00" in key or (isinstance(raw_value, str) and "\x00" in raw_value):
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{key or 'a field'} contains a NUL")
        value = raw_value.strip() if isinstance(raw_value, str) else raw_value
        if value == "":
            value = None
        if key == "properties":
            if not isinstance(raw_value, dict):
                raise CadenzaError(ErrorCode.VALIDATION_ERROR, "properties must be an object")
            nested = clean_contact_input(raw_value)
            if nested[0]:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR,
                    f"{', '.join(nested[0])} are contact fields, not custom properties",
                )
            properties.update(nested[1])
        elif key in CONTACT_FIELDS:
            columns[key] = _clean_field(key, value)
        else:
            if not key or len(key) > 100:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR, "property names must be 1 to 100 characters"
                )
            if value is not None and not isinstance(value, str | int | float | bool):
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR, f"property {key!r} must be text, number or boolean"
                )
            if isinstance(value, str) and len(value) > MAX_PROPERTY_CHARS:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR,
                    f"property {key[:40]!r} is longer than {MAX_PROPERTY_CHARS} characters",
                    {"field": key, "limit": MAX_PROPERTY_CHARS},
                )
            properties[key] = value
    check_property_count(properties)
    return columns, properties


def check_property_count(properties: dict[str, Any]) -> None:
    if len(properties) > MAX_PROPERTIES:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a contact has at most {MAX_PROPERTIES} custom properties ({len(properties)} given)",
            {"field": "properties", "limit": MAX_PROPERTIES},
        )


def _clean_field(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{key} must be text", {"field": key})
    if key == "email":
        return normalize_email(value)
    if key == "timezone":
        parse_timezone(value)
        return value
    if len(value) > _MAX_LENGTHS[key]:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{key} is longer than {_MAX_LENGTHS[key]} characters",
            {"field": key},
        )
    return value
