"""What can be a stored row's id.

Ids are PostgreSQL `integer` columns: a larger number given as an id (in a path, a form,
a rule, a CLI option) would make the driver fail ("integer out of range") where the
answer is "no such record". Ids and other whole numbers typed into a form or a link
are read from text by `whole_number` and `row_id_of`.
"""

from __future__ import annotations

import sys
from typing import Any, TypeGuard

MAX_ID = 2**31 - 1


def is_row_id(value: Any) -> TypeGuard[int]:
    """A whole number (not a bool) that a row's id can be."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def whole_number(text: str) -> int | None:
    """The whole number `text` spells in ASCII digits alone, or None. `str.isdigit`
    also takes "²" and "٣", which `int` refuses, and `int` refuses text longer than
    `sys.get_int_max_str_digits()`: a form field or link checked by `isdigit` alone
    answered such text with a 500."""
    longest = sys.get_int_max_str_digits() or len(text)
    if text.isascii() and text.isdigit() and len(text) <= longest:
        return int(text)
    return None


def row_id_of(text: str) -> int | None:
    """The row id `text` spells (`whole_number`, `is_row_id`), or None."""
    number = whole_number(text)
    return number if is_row_id(number) else None
