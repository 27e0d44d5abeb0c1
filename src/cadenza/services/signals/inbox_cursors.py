"""How far each mailbox folder has been read: (UIDVALIDITY, last UID) per folder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from cadenza.services.context import Context
from cadenza.services.read_models import copy_row
from cadenza.store.models import InboxCursor


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int


def get_cursor(ctx: Context, mailbox_id: int, folder: str) -> Cursor | None:
    with ctx.db.read() as session:
        row = _row(session, mailbox_id, folder)
        return Cursor(row.uidvalidity, row.last_uid) if row is not None else None


def save_cursor(
    ctx: Context, mailbox_id: int, folder: str, cursor: Cursor, error: str | None = None
) -> None:
    with ctx.db.transaction() as session:
        row = _row(session, mailbox_id, folder)
        if row is None:
            row = InboxCursor(mailbox_id=mailbox_id, folder=folder)
            session.add(row)
        row.uidvalidity, row.last_uid = cursor.uidvalidity, cursor.last_uid
        row.polled_at, row.last_error = ctx.clock.now(), error


def record_error(ctx: Context, mailbox_id: int, folder: str, error: str) -> None:
    """Keeps the cursor where it was; the message is shown in `cadenza inbox status`."""
    with ctx.db.transaction() as session:
        row = _row(session, mailbox_id, folder)
        if row is not None:
            row.polled_at, row.last_error = ctx.clock.now(), error[:500]


@dataclass(frozen=True)
class FolderStatus:
    """Where the reading of one folder stands, as `cadenza inbox status` shows it."""

    mailbox_id: int
    folder: str
    uidvalidity: int
    last_uid: int
    polled_at: datetime
    last_error: str | None


def list_cursors(ctx: Context) -> list[FolderStatus]:
    with ctx.db.read() as session:
        rows = session.scalars(select(InboxCursor).order_by(InboxCursor.mailbox_id))
        return [copy_row(FolderStatus, row) for row in rows]


def _row(session, mailbox_id: int, folder: str) -> InboxCursor | None:
    return session.scalar(
        select(InboxCursor)
        .where(InboxCursor.mailbox_id == mailbox_id, InboxCursor.folder == folder)
        .with_for_update()
    )
