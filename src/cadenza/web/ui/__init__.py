"""The web app people use: server-rendered pages (Jinja2 + htmx) over the same services as the API.

`install` mounts it at `/` beside the API under `/api/v1`: the session middleware,
security headers, HTML error pages for UI paths, static files and one router per
page area.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.link_secret import link_secret
from cadenza.web import errors
from cadenza.web.ui import (
    automation,
    contacts,
    enroll,
    enrollments,
    lists,
    login,
    outbox,
    records,
    reports,
    sequence_editor,
    sequence_enroll,
    sequences,
    settings_pages,
    tasks,
    templates_library,
)
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import (
    COOKIE_NAME,
    SESSION_MAX_AGE,
    LoginRequired,
    SessionCodec,
    login_url,
)

STATIC = Path(__file__).parent / "static"
NOT_UI = ("/api/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/metrics")

# Scripts and styles only from our own files: an injected <script> or inline handler
# would not run even if escaping ever failed. Email bodies are shown in a sandboxed
# frame served with its own, stricter policy (see outbox.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)


def is_ui(path: str) -> bool:
    return not path.startswith(NOT_UI)


class UiSession(BaseHTTPMiddleware):
    """Loads the signed session cookie for UI paths and writes it back when it changed."""

    def __init__(self, app, codec: SessionCodec) -> None:
        super().__init__(app)
        self.codec = codec

    async def dispatch(self, request: Request, call_next):
        if not is_ui(request.url.path):
            return await call_next(request)
        session = self.codec.load(request.cookies.get(COOKIE_NAME))
        request.state.ui_session = session
        response = await call_next(request)
        if session.changed:
            response.set_cookie(
                COOKIE_NAME,
                self.codec.dump(session),
                max_age=SESSION_MAX_AGE,
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
                path="/",
            )
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def _login_redirect(request: Request, exc: LoginRequired) -> Response:
    url = login_url(exc.next_path)
    if request.headers.get("hx-request"):
        # htmx would swap a redirect's page into a fragment: ask it to navigate instead.
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, status: int, code: str, message: str) -> Response:
    template = "error_fragment.html" if request.headers.get("hx-request") else "error.html"
    response = render(request, template, status_code=status, code=code, message=message)
    if request.headers.get("hx-request"):
        # htmx ignores error responses by default; these are meant to be read.
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _install_error_pages(app: FastAPI) -> None:
    async def cadenza_error(request: Request, exc: CadenzaError):
        if not is_ui(request.url.path):
            return await errors.cadenza_error(request, exc)
        return _error_page(request, exc.http_status, str(exc.code), exc.message)

    async def http_error(request: Request, exc: StarletteHTTPException):
        if not is_ui(request.url.path):
            return await errors.http_error(request, exc)
        message = "no such page" if exc.status_code in (404, 405) else str(exc.detail)
        return _error_page(request, exc.status_code, "not_found", message)

    async def invalid_request(request: Request, exc: RequestValidationError):
        if not is_ui(request.url.path):
            return await errors.invalid_request(request, exc)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"][1:])
        message = f"{where}: {first['msg']}" if where else first["msg"]
        return _error_page(request, 422, str(ErrorCode.VALIDATION_ERROR), message)

    async def login_required(request: Request, exc: LoginRequired):
        return _login_redirect(request, exc)

    app.add_exception_handler(CadenzaError, cadenza_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(LoginRequired, login_required)


def session_secret(ctx) -> str:
    """The installation's key (CADENZA_SECRET_KEY, else the one kept in the database),
    narrowed to this one use: sessions survive restarts and are shared by every web
    process, and a session cookie can never pass for a signed link or the reverse."""
    return hmac.new(link_secret(ctx), b"cadenza ui session", hashlib.sha256).hexdigest()


def install(app: FastAPI) -> None:
    ctx = app.state.ctx  # None when the app is built only for its OpenAPI document
    secret = session_secret(ctx) if ctx is not None else secrets.token_urlsafe(32)
    app.add_middleware(UiSession, codec=SessionCodec(secret))
    _install_error_pages(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        login, contacts, enroll, enrollments, outbox, sequences, sequence_editor, tasks,
        settings_pages, records, lists, automation, sequence_enroll, templates_library,
        reports,
    ):  # fmt: skip
        app.include_router(module.router, include_in_schema=False)
