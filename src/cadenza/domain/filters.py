"""The filter language of active lists and automation conditions.

A filter is a group: `{"all": [...]}` (AND) or `{"any": [...]}` (OR) of conditions and
nested groups. A condition names a contact property, or a property of an associated
record type (true when ANY associated record of that type matches):

    {"property": "plan", "op": "equals", "value": "pro"}
    {"object": "company", "property": "industry", "op": "contains", "value": "soft"}

Operators: equals, not_equals, contains (case-insensitive text), is_known, is_unknown,
greater_than, less_than (numbers, else ISO dates/times, else nothing matches),
in_last_days (a date/time within the last N days, N >= 0).

Evaluation is pure Python over plain dicts, so SQLite and PostgreSQL agree exactly and
the same code serves lists, rule conditions and tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from cadenza.domain.errors import CadenzaError, ErrorCode

OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "is_known",
    "is_unknown",
    "greater_than",
    "less_than",
    "in_last_days",
)
NO_VALUE = {"is_known", "is_unknown"}
MAX_DEPTH = 5
MAX_CONDITIONS = 50
CONTACT_FIELDS = (
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "timezone",
    "created_at",
    "updated_at",
)
RECORD_FIELDS = ("name", "created_at", "updated_at")


def _invalid(message: str, path: str) -> CadenzaError:
    return CadenzaError(ErrorCode.VALIDATION_ERROR, f"{path}: {message}", {"field": path})


def check(filters: Any, object_types: set[str], path: str = "filters") -> dict[str, Any]:
    """The filter as given, once every group, operator and value has been checked."""
    count = [0]
    _check_group(filters, object_types, path, 1, count)
    return cast(dict[str, Any], filters)


def _check_group(node: Any, types: set[str], path: str, depth: int, count: list[int]) -> None:
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in ("all", "any"):
        raise _invalid('a group is {"all": [...]} or {"any": [...]}', path)
    if depth > MAX_DEPTH:
        raise _invalid(f"groups nest at most {MAX_DEPTH} deep", path)
    key, items = next(iter(node.items()))
    if not isinstance(items, list) or not items:
        raise _invalid(f"{key} must list at least one condition or group", path)
    for index, item in enumerate(items):
        where = f"{path}.{key}.{index}"
        if isinstance(item, dict) and set(item) <= {"all", "any"}:
            _check_group(item, types, where, depth + 1, count)
        else:
            count[0] += 1
            if count[0] > MAX_CONDITIONS:
                raise _invalid(f"at most {MAX_CONDITIONS} conditions", path)
            _check_condition(item, types, where)


def _check_condition(item: Any, types: set[str], path: str) -> None:
    if not isinstance(item, dict):
        raise _invalid("a condition is an object with property, op and value", path)
    unknown = set(item) - {"object", "property", "op", "value"}
    if unknown:
        raise _invalid(f"unknown keys {', '.join(sorted(unknown))}", path)
    if "object" in item and item["object"] not in types:
        raise _invalid(f"no object type {item['object']!r}", f"{path}.object")
    prop = item.get("property")
    if not isinstance(prop, str) or not prop or len(prop) > 100:
        raise _invalid("property must name a property", f"{path}.property")
    op = item.get("op")
    if op not in OPERATORS:
        raise _invalid(f"op must be one of {', '.join(OPERATORS)}", f"{path}.op")
    value = item.get("value")
    if op in NO_VALUE:
        if value is not None:
            raise _invalid(f"{op} takes no value", f"{path}.value")
    elif op == "in_last_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 36500:
            raise _invalid("in_last_days needs a whole number of days (0-36500)", f"{path}.value")
    elif isinstance(value, bool) and op in ("equals", "not_equals"):
        pass
    elif not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _invalid(f"{op} needs a text or number value", f"{path}.value")


def object_types_used(filters: dict[str, Any] | None) -> set[str]:
    """The record types a filter looks at: only those need loading to evaluate it."""
    if not filters:
        return set()
    found: set[str] = set()
    for item in next(iter(filters.values())):
        if isinstance(item, dict) and set(item) <= {"all", "any"}:
            found |= object_types_used(item)
        elif "object" in item:
            found.add(item["object"])
    return found


def matches(filters: dict[str, Any], facts: dict[str, Any], now: datetime) -> bool:
    """`facts` is {"contact": {...}, "records": {"company": [{...}, ...], ...}}."""
    key, items = next(iter(filters.items()))
    results = (
        matches(item, facts, now)
        if isinstance(item, dict) and set(item) <= {"all", "any"}
        else _condition(item, facts, now)
        for item in items
    )
    return all(results) if key == "all" else any(results)


def _condition(item: dict[str, Any], facts: dict[str, Any], now: datetime) -> bool:
    if "object" in item:
        records = facts.get("records", {}).get(item["object"], [])
        if item["op"] in ("is_unknown", "not_equals"):  # no associated record has it
            positive = {**item, "op": "is_known" if item["op"] == "is_unknown" else "equals"}
            return not any(_test(positive, r.get(item["property"]), now) for r in records)
        return any(_test(item, r.get(item["property"]), now) for r in records)
    return _test(item, facts["contact"].get(item["property"]), now)


def _test(item: dict[str, Any], actual: Any, now: datetime) -> bool:
    op = item["op"]
    wanted: Any = item.get("value")
    known = actual is not None and actual != ""
    if op == "is_known":
        return known
    if op == "is_unknown":
        return not known
    if op == "not_equals":
        return not known or not equal(actual, wanted)
    if not known:
        return False
    if op == "equals":
        return equal(actual, wanted)
    if op == "contains":
        return str(wanted).lower() in _text(actual).lower()
    if op == "in_last_days":
        moment = _moment(actual)
        return moment is not None and now - timedelta(days=wanted) <= moment <= now
    left, right = _comparable(actual, wanted)
    if left is None:
        return False
    return bool(left > right) if op == "greater_than" else bool(left < right)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def equal(actual: Any, wanted: Any) -> bool:
    left, right = _number(actual), _number(wanted)
    if left is not None and right is not None:
        return left == right
    return _text(actual).strip().lower() == _text(wanted).strip().lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _comparable(actual: Any, wanted: Any) -> tuple[Any, Any]:
    left, right = _number(actual), _number(wanted)
    if left is not None and right is not None:
        return left, right
    left_at, right_at = _moment(actual), _moment(wanted)
    if left_at is not None and right_at is not None:
        return left_at, right_at
    return None, None
