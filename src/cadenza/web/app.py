"""The FastAPI application: API routes, errors, health, body limit, and the web app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.middleware.base import BaseHTTPMiddleware

from cadenza import __version__
from cadenza.domain.errors import ErrorCode
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.web import api_docs, errors, ui
from cadenza.web.auth import FailedLogins
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
    public,
    records,
    sequences,
    tasks,
    webhooks,
)

MAX_BODY_BYTES = 25 * 1024 * 1024  # a CSV import is the largest body we accept


class BodyLimit(BaseHTTPMiddleware):
    """Refuses a body announced as too large before reading it (413, in our error format)."""

    async def dispatch(self, request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return errors.error_response(
                413,
                ErrorCode.BODY_TOO_LARGE,
                f"request bodies are limited to {MAX_BODY_BYTES // (1024 * 1024)} MB",
            )
        return await call_next(request)


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
    app.state.failed_logins = FailedLogins()
    app.add_middleware(BodyLimit)
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """Readiness: the database answers and its schema is current."""
        try:
            with ctx.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current = migrate.is_current(ctx.db)
        except Exception as exc:  # any failure to reach the database means "not ready"
            return JSONResponse({"status": "unavailable", "reason": str(exc)[:200]}, 503)
        if not current:
            return JSONResponse({"status": "unavailable", "reason": "migrations pending"}, 503)
        return {"status": "ready"}

    api_modules = (
        contacts, mailboxes, sequences, enrollments, tasks, messages, events, webhooks,
        records, lists, automation, analytics, integrations,
    )  # fmt: skip
    for module in api_modules:
        router = module.router
        app.include_router(router, prefix="/api/v1")
    app.include_router(public.router)  # unsubscribe, open and click links: token-signed
    api_docs.install(app)
    ui.install(app)  # the web app at `/`, after the API so that it never shadows it
    return app
