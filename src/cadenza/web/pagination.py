"""Cursor pagination: `?limit=&cursor=` → `{"results": [...], "next_cursor": ...}`.

Cursors are opaque strings to clients; today they carry the last id seen (keyset
pagination: stable under inserts, cheap at any depth).
"""

from __future__ import annotations

from typing import Any

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.web.errors import MAX_ID

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def after_id(cursor: str | None) -> int | None:
    if cursor in (None, ""):
        return None
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 10) or int(cursor) > MAX_ID:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "cursor is not one this API gave out")
    return int(cursor)


def page(results: list[Any], next_after: int | None) -> dict[str, Any]:
    return {"results": results, "next_cursor": str(next_after) if next_after else None}


def paged(rows: list[Any], limit: int, render) -> dict[str, Any]:
    """`rows` were fetched with `limit + 1`: the extra row only says that more follow."""
    more = len(rows) > limit
    rows = rows[:limit]
    return page([render(row) for row in rows], rows[-1].id if more else None)
