"""Copying a row into a read model: what services hand the web app and the CLI.

A read model is a frozen dataclass, declared next to the service that builds it, that
holds the plain values one view of a row needs. The web app and the CLI get these,
never ORM rows, so they cannot lazy-load, write back by accident or come to depend on
the schema's shape (docs/architecture/reads.md). Most read models are a row's columns
by the same names; `copy_row` fills those, and the service passes what is computed.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

View = TypeVar("View")


def copy_row(view: type[View], row: object, **computed: Any) -> View:
    """`view` with each field read from `row`'s attribute of the same name, except the
    ones given in `computed`. Mutable column values (JSON dicts and lists) are copied, so
    the read model does not share them with the session that loaded the row."""
    values = dict(computed)
    for spec in fields(view):  # type: ignore[arg-type]
        if spec.name in values:
            continue
        value = getattr(row, spec.name)
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = list(value)
        values[spec.name] = value
    return view(**values)
