"""Postmark's bounce and spam-complaint webhooks, read into our terms.

Postmark posts one JSON object per event (`RecordType` "Bounce" or "SpamComplaint")
with its own numeric `ID`, the recipient in `Email`, and for bounces a `Type` such as
"HardBounce" or "SoftBounce". Its `MessageID` is Postmark's, not our Message-ID
header; ours is found in `Content` (the bounce's text, when Postmark has it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cadenza.domain.enums import EventKind

# Types after which Postmark will not deliver to the address again.
HARD_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
RECORD_TYPES = {"Bounce": EventKind.BOUNCE, "SpamComplaint": EventKind.COMPLAINT}
_OUR_ID = re.compile(r"^Message-ID:\s*(<[^<>\s]+@[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ProviderEvent:
    kind: EventKind
    provider_id: str
    email: str
    hard: bool
    message_id: str | None
    occurred_at: datetime | None
    data: dict[str, Any]


def read_postmark(payload: dict[str, Any]) -> ProviderEvent | None:
    """None for record types we do not act on (deliveries, opens, …); ValueError when a
    bounce or complaint lacks what identifies it."""
    kind = RECORD_TYPES.get(str(payload.get("RecordType", "")))  # pragma: no mutate
    if kind is None:
        return None
    provider_id, email = payload.get("ID"), payload.get("Email")
    if provider_id in (None, "") or not isinstance(email, str) or "@" not in email:
        raise ValueError("a Postmark bounce or complaint needs its ID and Email")
    bounce_type = str(payload.get("Type", ""))
    content = payload.get("Content") if isinstance(payload.get("Content"), str) else ""
    ours = _OUR_ID.search(content or "")  # pragma: no mutate: no id in XXXX
    return ProviderEvent(
        kind=kind,
        provider_id=f"{payload.get('RecordType')}:{provider_id}",
        email=email.strip(),
        hard=kind is EventKind.COMPLAINT
        or bounce_type in HARD_TYPES
        or payload.get("Inactive") is True,
        message_id=ours.group(1) if ours else None,
        occurred_at=_when(payload.get("BouncedAt")),
        data={
            "source": "postmark",
            "type": bounce_type or None,
            "type_code": payload.get("TypeCode"),
            "description": str(payload.get("Description") or "")[:500] or None,
            "details": str(payload.get("Details") or "")[:500] or None,
            "postmark_message_id": payload.get("MessageID"),
        },
    )


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))  # pragma: no mutate
    except ValueError:
        return None
    return moment if moment.tzinfo else None
