"""The values templates see: the contact, the sender, and per-enrollment token values."""

from __future__ import annotations

from typing import Any

from cadenza.domain.errors import CadenzaError, ErrorCode

NAMESPACES = ("contact", "sender")


def normalize_token_values(values: Any) -> dict[str, str]:
    """Accepts {"contact.firstname": "Ann"} or the short {"firstname": "Ann"} (a contact token)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "token_values must be an object")
    clean: dict[str, str] = {}
    for key, value in values.items():
        name = str(key).strip()
        if "." not in name:
            name = f"contact.{name}"
        namespace, _, field = name.partition(".")
        if namespace not in NAMESPACES or not field:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"token {key!r} must be contact.<name> or sender.<name>",
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        clean[name] = str(value)
    return clean


def build_context(
    contact: dict[str, Any], sender: dict[str, Any], token_values: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per-enrollment token values win over the records: the rep typed them on purpose."""
    context = {"contact": dict(contact), "sender": dict(sender)}
    for name, value in token_values.items():
        namespace, _, field = name.partition(".")
        context[namespace][field] = value
    return context
