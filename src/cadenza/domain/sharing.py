"""Reading a `sharing` value from a request: one parser for sequences, email templates
and snippets (what each sharing opens is the policy's `shared_owners`)."""

from __future__ import annotations

from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode


def parse_sharing(value: object) -> Sharing:
    if isinstance(value, str) and value in set(Sharing):
        return Sharing(value)
    allowed = ", ".join(Sharing)
    raise CadenzaError(
        ErrorCode.VALIDATION_ERROR,
        f"sharing must be one of {allowed}, got {value!r}",
        {"field": "sharing", "allowed": list(Sharing)},
    )
