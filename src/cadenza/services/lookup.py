"""Fetching a row by id, or the not-found error the user should see."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.store import models

Row = TypeVar("Row")

_NOT_FOUND = {
    models.User: (ErrorCode.USER_NOT_FOUND, "user"),
    models.Mailbox: (ErrorCode.MAILBOX_NOT_FOUND, "mailbox"),
    models.Contact: (ErrorCode.CONTACT_NOT_FOUND, "contact"),
    models.Enrollment: (ErrorCode.ENROLLMENT_NOT_FOUND, "enrollment"),
    models.Message: (ErrorCode.NOT_FOUND, "message"),
    models.Task: (ErrorCode.NOT_FOUND, "task"),
}


def fetch(session: Session, model: type[Row], row_id: int, *, for_update: bool = False) -> Row:
    row = session.get(model, row_id, with_for_update=for_update or None)
    if row is None:
        raise not_found(model, row_id)
    return row


def not_found(model: type[Any], row_id: int) -> CadenzaError:
    """The error for a row of `model` that does not exist, for a row read otherwise
    than by `fetch` (with others, in one statement)."""
    code, noun = _NOT_FOUND[model]
    return CadenzaError(code, f"{noun} {row_id} does not exist", {"id": row_id})
