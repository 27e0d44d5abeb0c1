"""Jinja2 for the pages: autoescaped everywhere, with filters that always show a time's zone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cadenza.domain import enums, policy
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts.mailboxes import disconnected_mailboxes
from cadenza.web.ui.session import session_of

TEMPLATES = Path(__file__).parent / "templates"
HTMX = "htmx-2.0.4.min.js"

# Autoescape is on for every template whatever its name: a contact called
# `<script>` is text on every page. StrictUndefined makes a misspelt variable an error
# in tests instead of a silently empty cell.
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)


def local_time(moment: datetime | None, zone: str | None, *, weekday: bool = True) -> str:
    """ "Tue 01 Dec 2026 09:00 CET": a time is never shown without its zone."""
    if moment is None:
        return "—"
    try:
        tz = parse_timezone(zone or "UTC")
    except CadenzaError:
        tz = parse_timezone("UTC")
    local = moment.astimezone(tz)
    return local.strftime("%a %d %b %Y %H:%M " if weekday else "%d %b %Y %H:%M ") + (
        local.tzname() or tz.key
    )


def person_name(record: Any) -> str:
    name = " ".join(p for p in (record.firstname, record.lastname) if p)
    return name or getattr(record, "email", None) or f"contact {record.id}"


env.filters["local_time"] = local_time


def percent(rate: float | None) -> str:
    """A rate for people: one decimal, or a dash when there was nothing to divide by."""
    return "—" if rate is None else f"{rate:.1%}"


env.filters["percent"] = percent
env.globals["person_name"] = person_name
env.globals["htmx_file"] = HTMX
env.globals["may"] = policy.may  # what a page offers follows the same policy the services apply
# The closed vocabularies, so that a template compares with a member (EnrollmentState.ACTIVE)
# and a misspelt one fails loudly (StrictUndefined) instead of never matching.
for _name, _vocabulary in vars(enums).items():
    if (
        isinstance(_vocabulary, type)
        and issubclass(_vocabulary, StrEnum)
        and _vocabulary is not StrEnum
    ):
        env.globals[_name] = _vocabulary


def viewer_zone(request: Request) -> str:
    user = getattr(request.state, "ui_user", None)
    ctx = request.app.state.ctx
    return (user.timezone if user is not None else None) or ctx.settings.default_timezone


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = getattr(request.state, "ui_user", None)
    # The banner: a disconnected mailbox holds its owner's emails, whatever page they are on.
    waiting = disconnected_mailboxes(request.app.state.ctx, user.id) if user is not None else []
    page = env.get_template(template).render(
        request=request,
        user=user,
        disconnected_mailboxes=waiting,
        csrf_token=session_of(request).csrf,
        viewer_zone=viewer_zone(request),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status_code)
