"""The audit trail: who did what, written in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cadenza.services.context import Context
from cadenza.store.models import AuditEntry


def record(
    session: Session,
    ctx: Context,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: int | None,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            data=data or {},
            at=ctx.clock.now(),
        )
    )
