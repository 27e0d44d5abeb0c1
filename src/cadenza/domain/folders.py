"""Folder names for sequences: what a user may type as one.

A folder is a name sequences carry (`sequences.folder`), not a row of its own: it exists
while a sequence is in it, and renaming it renames it on every sequence in it.
"""

from __future__ import annotations

import unicodedata

from cadenza.domain.errors import CadenzaError, ErrorCode

MAX_FOLDER_LENGTH = 100
_FORBIDDEN = set('/\\<>"')


def folder_name(value: object) -> str | None:
    """The folder as stored: trimmed, None for none (empty or blank); refuses what is too
    long, control or formatting characters, and the characters paths and markup use."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "folder must be a string")
    name = " ".join(value.split())
    if not name:
        return None
    if len(name) > MAX_FOLDER_LENGTH:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"folder must be at most {MAX_FOLDER_LENGTH} characters",
            {"max_length": MAX_FOLDER_LENGTH},
        )
    bad = sorted({c for c in name if c in _FORBIDDEN or unicodedata.category(c).startswith("C")})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"folder may not contain {shown}", {"folder": name}
        )
    return name
