"""The FastAPI application: API routes, errors, health, body limit, and the web app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza import __version__
from cadenza.domain.errors import ErrorCode
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.web import api_docs, errors, observability, ui
from cadenza.web.routes import (
    analytics,
    automation,
    contacts,
    enrollments,
    events,
    integrations,
    lists,
    mailboxes,
    messages,
    preferences,
    public,
    records,
    reports,
    sequences,
    snippets,
    tasks,
    templates,
    webhooks,
)
from cadenza.web.routes import profile as profile_routes

log = logging.getLogger("cadenza.web")

MAX_BODY_BYTES = 25 * 1024 * 1024  # a CSV import is the largest body we accept


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a body larger than MAX_BODY_BYTES with 413, in our error format.

    Counts the bytes actually received, not the Content-Length a client announces: a
    chunked body has none, and a lying one could announce little and send a lot. An
    announced length over the limit is refused before anything is read. When the limit
    is passed mid-stream, reading stops, and whatever the app would answer to a body it
    never got whole is replaced by the 413. (Pure ASGI: a BaseHTTPMiddleware would read
    the body through its own wrapper.)
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.error_response(
            413,
            ErrorCode.BODY_TOO_LARGE,
            f"request bodies are limited to {self.limit // (1024 * 1024)} MB",
        )
        await response(scope, receive, send)


HSTS = "max-age=31536000; includeSubDomains"


class StrictTransport:
    """Over https, every answer tells browsers to use https only from now on (HSTS).
    Not over http: a plain-http installation (a laptop) would lock its browsers out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, with_hsts)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="Cadenza API",
        version=__version__,
        description="Sequences, contacts and enrollments of a self-hosted Cadenza. "
        "Authenticate with `Authorization: Bearer <token>` (`cadenza token create`).",
        docs_url=None,  # api_docs serves /docs from the package, not from a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.http_metrics = http_metrics = observability.HttpMetrics()
    app.add_middleware(BodyLimit)
    app.add_middleware(StrictTransport)
    app.add_middleware(observability.RequestContext, metrics=http_metrics)  # outermost
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict:
        """Liveness: the process answers. The metrics token's holder or an admin also
        gets the schema version and the workers' last tick (docs/operations.md)."""
        if observability.trusted_caller(request, ctx):
            return {"status": "ok", **observability.readiness_details(ctx)}
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request):
        """Readiness: the database answers and its schema is current. Anyone may ask, so
        an anonymous answer says only ready or not (why not is in the server's log); the
        metrics token's holder or an admin also gets the schema version and the
        workers' last tick."""
        try:
            with ctx.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current = migrate.is_current(ctx.db)
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("not ready: the database does not answer (%s)", type(exc).__name__)
            return JSONResponse({"status": "unavailable"}, 503)
        details = observability.readiness_details(ctx) if observability.trusted_caller(
            request, ctx) else {}  # fmt: skip
        if not current:
            log.warning("not ready: migrations pending (run `cadenza db upgrade`)")
            return JSONResponse({"status": "unavailable", **details}, 503)
        return {"status": "ready", **details}

    observability.install(app, http_metrics)

    api_modules = (
        contacts, mailboxes, sequences, enrollments, tasks, messages, events, webhooks,
        records, lists, automation, analytics, integrations, preferences,
        profile_routes, templates, snippets, reports,
    )  # fmt: skip
    for module in api_modules:
        router = module.router
        app.include_router(router, prefix="/api/v1")
    app.include_router(public.router)  # unsubscribe, open and click links: token-signed
    api_docs.install(app)
    ui.install(app)  # the web app at `/`, after the API so that it never shadows it
    return app


def create_metrics_app(main: FastAPI) -> FastAPI:
    """The separate listener at CADENZA_METRICS_ADDRESS: /metrics only, without a token
    (its address is its protection), reporting the main app's requests. `cadenza serve`
    runs it beside the main app."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ctx, http_metrics = main.state.ctx, main.state.http_metrics

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        return observability.metrics_response(ctx, http_metrics)

    return app
