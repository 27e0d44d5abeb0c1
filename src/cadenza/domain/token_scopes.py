"""What an API token may be used for.

A token without scopes acts with all its user's rights — fine for a person's own
scripts, too much for a third-party system that only reports events (a CRM, a
calendar tool, an email provider's webhook): if that system leaks its token, the
holder should be able to post events and nothing else. So an admin creates such
integrations a token with the scope `events`.
"""

from __future__ import annotations

from cadenza.domain.errors import CadenzaError, ErrorCode

EVENTS = "events"
SCOPES = (EVENTS,)

# Each scope → the (method, path) pairs it opens.
_OPENS = {
    EVENTS: {("POST", "/api/v1/events"), ("POST", "/api/v1/events/postmark")},
}


def parse(scopes: list[str] | None) -> str | None:
    """Stored form: None (a full token) or the sorted scopes joined by spaces."""
    if not scopes:
        return None
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"unknown token scope {', '.join(unknown)}",
            {"field": "scopes", "allowed": list(SCOPES)},
        )
    return " ".join(sorted(set(scopes)))


def allows(stored: str | None, method: str, path: str) -> bool:
    if stored is None:
        return True
    request = (method.upper(), path.rstrip("/"))
    return any(request in _OPENS.get(scope, ()) for scope in stored.split())
