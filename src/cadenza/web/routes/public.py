"""The links in our emails: one-click unsubscribe, its confirmation page, open pixel, clicks.

The only routes without an API token: each is authorised by the signed token in its
path instead (domain/link_tokens.py), and a token that does not verify is a 404. They
are not part of the API, so they stay out of the OpenAPI document.

Unsubscribing never happens on GET: mail security scanners fetch every link in a
message, and a GET that unsubscribed would unsubscribe people who never asked to.
"""

from __future__ import annotations

import base64
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cadenza.domain.errors import CadenzaError
from cadenza.services.signals import tracking
from cadenza.web.auth import Ctx
from cadenza.web.errors import error_response

router = APIRouter(include_in_schema=False)

# A transparent 1x1 GIF, the smallest image every mail client displays.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#222}}button{{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=escape(title), body=body), status, PAGE_HEADERS)


def _failure(request: Request, exc: CadenzaError) -> Response:
    """A person's browser gets a page; anything else our JSON error format."""
    if "text/html" in request.headers.get("accept", ""):
        return page("Link not valid", "<p>This link is not valid. Check that it was "
                    "copied whole from the email.</p>", exc.http_status)  # fmt: skip
    return error_response(exc.http_status, exc.code, exc.message, exc.details)


def _masked(email: str) -> str:
    """Enough for the reader to recognise their address, not to harvest it from a link."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request, ctx: Ctx) -> Response:
    """One button; the form posts to the same URL as the one-click header does."""
    try:
        who = tracking.recipient(ctx, token)
    except CadenzaError as exc:
        return _failure(request, exc)
    address = escape(_masked(who.email))
    if who.unsubscribed:
        return page("You are unsubscribed", f"<p>{address} will get no more emails from us.</p>")
    return page(
        "Unsubscribe",
        f"<p>Stop all emails from us to {address}?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request, ctx: Ctx) -> Response:
    """RFC 8058 one-click, and the confirmation page's button: no further question.

    The body (`List-Unsubscribe=One-Click`) is not required: the signed token is the
    authority, and a client that posts without it still means to unsubscribe."""
    try:
        tracking.unsubscribe(ctx, token, request.headers.get("user-agent"))
    except CadenzaError as exc:
        return _failure(request, exc)
    return page("You are unsubscribed", "<p>You will get no more emails from us.</p>")


@router.get("/o/{token}.gif")
def open_pixel(token: str, request: Request, ctx: Ctx) -> Response:
    try:
        tracking.record_open(ctx, token, request.headers.get("user-agent"))
    except CadenzaError as exc:
        return _failure(request, exc)
    return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


@router.get("/c/{token}")
def click(token: str, request: Request, ctx: Ctx) -> Response:
    try:
        url = tracking.record_click(ctx, token, request.headers.get("user-agent"))
    except CadenzaError as exc:
        return _failure(request, exc)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)
