"""What can be a stored row's id.

Ids are PostgreSQL `integer` columns: a larger number given as an id (in a path, a form,
a rule, a CLI option) would make the driver fail ("integer out of range") where the
answer is "no such record".
"""

from __future__ import annotations

from typing import Any, TypeGuard

MAX_ID = 2**31 - 1


def is_row_id(value: Any) -> TypeGuard[int]:
    """A whole number (not a bool) that a row's id can be."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
