"""Object types and their typed properties: checked when a type is defined, and every
value checked against its property's type when a record is written.

Values are stored in the JSON form a client sends back unchanged: numbers as numbers,
dates as "YYYY-MM-DD", booleans as true/false, enums as one of their options. CSV
cells arrive as text, so `coerce` also accepts the usual spellings ("1,200", "yes").
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from cadenza.domain.errors import CadenzaError, ErrorCode

PROPERTY_TYPES = ("string", "number", "date", "bool", "enum")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_PROPERTIES = 100
MAX_OPTIONS = 200
MAX_STRING = 5000
# Names a property cannot take: they are the record's own fields.
RESERVED = {"id", "name", "type", "created_at", "updated_at", "associations", "enrollments"}
TRUE = {"true", "yes", "y", "1", "on"}
FALSE = {"false", "no", "n", "0", "off"}


def _invalid(message: str, **details: Any) -> CadenzaError:
    return CadenzaError(ErrorCode.VALIDATION_ERROR, message, details or None)


def check_type_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise _invalid(
            f"{field} must be lower case letters, digits and '_', starting with a letter",
            field=field,
        )
    return value


def check_properties(definitions: Any) -> list[dict[str, Any]]:
    """The property list of a type, normalised; refuses duplicates and unknown types."""
    if not isinstance(definitions, list) or len(definitions) > MAX_PROPERTIES:
        raise _invalid(f"properties must be a list of at most {MAX_PROPERTIES} definitions")
    seen: set[str] = set()
    clean = []
    for index, item in enumerate(definitions):
        field = f"properties.{index}"
        if not isinstance(item, dict):
            raise _invalid(f"{field} must be an object", field=field)
        unknown = set(item) - {"name", "label", "type", "options"}
        if unknown:
            raise _invalid(f"{field} has unknown keys: {', '.join(sorted(unknown))}", field=field)
        name = check_type_name(item.get("name"), f"{field}.name")
        if name in RESERVED:
            raise _invalid(f"{field}.name {name!r} is reserved", field=field)
        if name in seen:
            raise _invalid(f"property {name!r} is defined twice", field=field)
        seen.add(name)
        kind = item.get("type")
        if kind not in PROPERTY_TYPES:
            raise _invalid(
                f"{field}.type must be one of {', '.join(PROPERTY_TYPES)}", field=f"{field}.type"
            )
        label = item.get("label") or name.replace("_", " ").capitalize()
        if not isinstance(label, str) or len(label) > 100:
            raise _invalid(f"{field}.label must be text of at most 100 characters", field=field)
        definition: dict[str, Any] = {"name": name, "label": label, "type": kind}
        if kind == "enum":
            options = item.get("options")
            if (
                not isinstance(options, list)
                or not options
                or len(options) > MAX_OPTIONS
                or not all(isinstance(o, str) and o and len(o) <= 200 for o in options)
                or len(set(options)) != len(options)
            ):
                raise _invalid(
                    f"{field}.options must list 1 to {MAX_OPTIONS} distinct, non-empty texts",
                    field=f"{field}.options",
                )
            definition["options"] = options
        elif "options" in item and item["options"] is not None:
            raise _invalid(f"{field}.options only applies to enum properties", field=field)
        clean.append(definition)
    return clean


def coerce(definition: dict[str, Any], value: Any) -> Any:
    """The stored form of `value` for this property, or a validation error naming it.
    None and "" clear the property."""
    name, kind = definition["name"], definition["type"]
    if value is None or value == "":
        return None
    try:
        if kind == "string":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError("must be text")
            text = str(value)
            if len(text) > MAX_STRING or "\x00" in text:
                raise ValueError(f"must be text of at most {MAX_STRING} characters")
            return text
        if kind == "number":
            return _number(value)
        if kind == "date":
            if not isinstance(value, str):
                raise ValueError("must be a date YYYY-MM-DD")
            return date.fromisoformat(value.strip()[:10]).isoformat()
        if kind == "bool":
            return _bool(value)
        options = definition["options"]
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value
    except ValueError as exc:
        message = str(exc) if str(exc).startswith("must") else f"must be a valid {kind}"
        raise _invalid(
            f"property {name!r} {message} (got {value!r})", field=f"properties.{name}"
        ) from None


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        number = float(value.strip().replace(",", "").replace("_", ""))
    else:
        raise ValueError("must be a number")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return int(number) if float(number).is_integer() and abs(number) < 2**53 else number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError("must be true or false")


def check_values(definitions: list[dict[str, Any]], values: Any) -> dict[str, Any]:
    """Every value checked against its property; unknown property names are refused."""
    if not isinstance(values, dict):
        raise _invalid("properties must be an object")
    by_name = {d["name"]: d for d in definitions}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise _invalid(
            f"unknown properties: {', '.join(unknown)} (defined: {', '.join(by_name) or 'none'})",
            field="properties",
            unknown=unknown,
        )
    return {name: coerce(by_name[name], value) for name, value in values.items()}
