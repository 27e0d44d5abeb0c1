"""What operators and orchestrators read: GET /metrics, the request middleware (request
ids, a log line and metrics per request), and the details /readyz gives the trusted.

/metrics (Prometheus text format) reports three sources:
- the installation's state, read from the database at scrape time
  (services/monitoring/state.py): mailboxes, pending steps by wait reason, sends
  awaiting review, enrollments by state, webhook deliveries, inboxes, the schema;
- every recent worker's own counters and histograms, from its heartbeat row
  (engine/metrics.py), each with a `worker` label;
- this web process's HTTP requests (in memory; with PROMETHEUS_MULTIPROC_DIR set,
  prometheus-client's multiprocess mode adds up the processes of one host).
So any web process answers for every worker on every host; only the HTTP figures are
the process's own. docs/operations.md lists every metric.

Who may read: a client presenting CADENZA_METRICS_TOKEN as a Bearer token, or anyone
reaching the separate listener at CADENZA_METRICS_ADDRESS. With neither configured,
/metrics is 404: nothing leaks by default.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza import __version__, logs
from cadenza.domain import policy
from cadenza.domain.enums import EnrollmentState, WebhookDeliveryStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts import login_brake
from cadenza.services.accounts.users import resolve_token
from cadenza.services.context import Context
from cadenza.services.monitoring import heartbeat, state
from cadenza.web.auth import client_address

log = logging.getLogger("cadenza.http")

# No `*_created` series beside each counter and histogram: Prometheus's own text format
# does not need them, and they would double the series of every route.
disable_created_metrics()

METRICS_TOKEN_ACCOUNT = "(metrics token)"  # the failed-guess brake's account for it
REQUEST_ID_HEADER = "x-request-id"
_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Seconds: API reads are milliseconds, an import or a big export seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


# --- the HTTP requests of this process -------------------------------------------------


class HttpMetrics:
    """Requests by route template (never the raw path: ids would make a series each)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cadenza_http_requests",
            "HTTP requests answered by this web process, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cadenza_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )

    def exposed(self) -> CollectorRegistry:
        """This process's registry, or all of this host's processes' (multiprocess mode)."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_HostHttpCollector())
        return registry


class _HostHttpCollector(Collector):
    """The HTTP families of every process of this host (PROMETHEUS_MULTIPROC_DIR), and
    only those: a worker started with the same directory writes its own counters there
    too, and /metrics reports those from its heartbeat, labelled with the worker."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import multiprocess

        everything = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(everything)
        for family in everything.collect():
            if family.name.startswith("cadenza_http_"):
                yield family


class RequestContext:
    """Gives each request an id (the client's X-Request-ID when it is a sane one, else a
    new one), binds it for every log record of the request, echoes it in the answer,
    and logs and counts the request once answered. (Pure ASGI, like BodyLimit.)"""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                presented = value.decode("latin-1")
        request_id = presented if _GOOD_REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with logs.bound(request_id=request_id):
            try:
                await self.app(scope, receive, with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_of(scope)
                method = scope.get("method", "")
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(elapsed)
                # The client as the trusted proxy forwarded it (uvicorn rewrote the scope).
                client = (scope.get("client") or ("-", 0))[0]
                log.info(
                    "%s %s %s %.1f ms from %s", method, route, status, elapsed * 1000, client,
                    extra={"method": method, "route": route, "status": status,
                           "duration_ms": round(elapsed * 1000, 1), "client": client},
                )  # fmt: skip


def _route_of(scope: Scope) -> str:
    """The matched route's template (`/api/v1/contacts/{contact_id}`), else "unmatched".

    Rebuilt from the path and its parameters: the prefix of an included router is not
    on the route object, and the raw path would put ids (and the signed tokens of
    unsubscribe and tracking links) into labels and logs.
    """
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = scope.get("path", "").split("/")
    return "/".join(f"{{{names[s]}}}" if s in names else s for s in segments)


# --- the installation, from the database and the heartbeats ----------------------------


class InstallationCollector(Collector):
    """Reads the installation's state and the workers' heartbeats at each scrape."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        now = self.ctx.clock.now()
        snap = state.snapshot(self.ctx)
        yield from _build_and_schema(state.schema_version(self.ctx))
        yield from _mailboxes(snap)
        yield from _steps(snap, now)
        yield from _enrollments_and_webhooks(snap, now)
        yield from _inboxes(snap)
        yield from _workers(self.ctx, now)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _build_and_schema(schema: state.SchemaVersion) -> Iterator[Metric]:
    build = _gauge("cadenza_build_info", "The running version.", ["version"])
    build.add_metric([__version__], 1)
    info = _gauge("cadenza_schema_info", "The database's schema revision and the code's.",
                  ["current", "head"])  # fmt: skip
    info.add_metric([schema.current or "none", schema.head], 1)
    current = _gauge("cadenza_schema_up_to_date", "1 when the schema is the code's head.")
    current.add_metric([], 1 if schema.up_to_date else 0)
    yield from (build, info, current)


def _mailboxes(snap: state.InstallationState) -> Iterator[Metric]:
    info = _gauge("cadenza_mailbox_info", "A mailbox's sending address.", ["mailbox", "address"])
    connected = _gauge(
        "cadenza_mailbox_connected",
        "1 while the mailbox may send; 0 when paused as disconnected (credentials refused).",
        ["mailbox"],
    )
    sent = _gauge("cadenza_mailbox_sent_24h", "Emails sent in the last 24 hours.", ["mailbox"])
    limit = _gauge("cadenza_mailbox_daily_limit", "The mailbox's 24-hour limit.", ["mailbox"])
    unsettled = _gauge(
        "cadenza_messages_unsettled",
        "Emails being handed over (handing) or whose outcome is unknown and awaits review.",
        ["mailbox", "status"],
    )
    for mailbox in snap.mailboxes:
        key = str(mailbox.mailbox_id)
        info.add_metric([key, mailbox.address], 1)
        connected.add_metric([key], 1 if mailbox.connected else 0)
        sent.add_metric([key], mailbox.sent_24h)
        limit.add_metric([key], mailbox.daily_limit)
        for status in state.UNSETTLED:
            count = snap.unsettled_messages.get((mailbox.mailbox_id, str(status)), 0)
            unsettled.add_metric([key, str(status)], count)
    yield from (info, connected, sent, limit, unsettled)


def _steps(snap: state.InstallationState, now: datetime) -> Iterator[Metric]:
    due = _gauge(
        "cadenza_step_runs_due",
        "Pending step runs due now, by mailbox and what holds them (none: a worker's turn).",
        ["mailbox", "reason"],
    )
    scheduled = _gauge(
        "cadenza_step_runs_scheduled",
        "Pending step runs due later, by mailbox and why they wait (none: their time).",
        ["mailbox", "reason"],
    )
    oldest = _gauge(
        "cadenza_step_runs_oldest_due_seconds",
        "How long the mailbox's longest-waiting due step run has been due.",
        ["mailbox"],
    )
    for group in snap.pending_steps:
        key = str(group.mailbox_id)
        (due if group.due else scheduled).add_metric([key, group.reason], group.count)
    for mailbox in snap.mailboxes:
        first = snap.oldest_due_at.get(mailbox.mailbox_id)
        age = max((now - first).total_seconds(), 0.0) if first else 0.0
        oldest.add_metric([str(mailbox.mailbox_id)], age)
    yield from (due, scheduled, oldest)


def _enrollments_and_webhooks(snap: state.InstallationState, now: datetime) -> Iterator[Metric]:
    enrollments = _gauge("cadenza_enrollments", "Enrollments by state.", ["state"])
    for value in EnrollmentState:
        enrollments.add_metric([str(value)], snap.enrollments.get(str(value), 0))
    attention = _gauge(
        "cadenza_enrollments_needing_attention",
        "Enrollments flagged for a person: a failed step or a send of unknown outcome.",
    )
    attention.add_metric([], snap.needing_attention)
    deliveries = _gauge(
        "cadenza_webhook_deliveries",
        "Webhook deliveries by outcome (pending, delivered, failed after the last attempt).",
        ["status"],
    )
    for status in WebhookDeliveryStatus:
        deliveries.add_metric([str(status)], snap.webhook_deliveries.get(str(status), 0))
    lag = _gauge(
        "cadenza_webhook_oldest_pending_seconds",
        "How long the oldest pending webhook delivery has been due (0: none overdue).",
    )
    oldest = snap.oldest_pending_webhook_at
    lag.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield from (enrollments, attention, deliveries, lag)


def _inboxes(snap: state.InstallationState) -> Iterator[Metric]:
    polled = _gauge(
        "cadenza_inbox_last_poll_timestamp_seconds",
        "When the mailbox's inbox was last read (Unix time).",
        ["mailbox"],
    )
    failing = _gauge(
        "cadenza_inbox_failing",
        "1 when the mailbox's last inbox poll failed (the error is on its settings page).",
        ["mailbox"],
    )
    for inbox in snap.inboxes:
        polled.add_metric([str(inbox.mailbox_id)], _seconds(inbox.polled_at))
        failing.add_metric([str(inbox.mailbox_id)], 1 if inbox.failing else 0)
    yield from (polled, failing)


def _workers(ctx: Context, now: datetime) -> Iterator[Metric]:
    beats = heartbeat.recent(ctx)
    count = _gauge("cadenza_workers", "Workers that ticked in the last 15 minutes.")
    count.add_metric([], len(beats))
    ticked = _gauge(
        "cadenza_worker_last_tick_timestamp_seconds",
        "When each recent worker last ticked (Unix time).",
        ["worker"],
    )
    for beat in beats:
        ticked.add_metric([beat.worker_id], _seconds(beat.last_tick_at))
    age = _gauge(
        "cadenza_worker_last_tick_age_seconds",
        "Seconds since any worker last ticked (+Inf: none ever did).",
    )
    last = heartbeat.last_tick(ctx)
    age.add_metric([], (now - last).total_seconds() if last else math.inf)
    yield from (count, ticked, age)
    yield from _merged(beats)


def _merged(beats: list[heartbeat.WorkerBeat]) -> Iterator[Metric]:
    """Every worker's snapshot (engine/metrics.py) as one family per name, each sample
    labelled with its worker."""
    families: dict[str, Metric] = {}
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for beat in beats:
        for family in beat.metrics.get("families", []):
            name = family["name"]
            families.setdefault(name, Metric(name, family["help"], family["type"]))
            for sample_name, labels, value in family["samples"]:
                samples[name].append((sample_name, {**labels, "worker": beat.worker_id}, value))
    for name, family in families.items():
        for sample_name, labels, value in samples[name]:
            family.add_sample(sample_name, labels, value)
        yield family


# --- GET /metrics ----------------------------------------------------------------------


def exposition(ctx: Context, http: HttpMetrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstallationCollector(ctx))
    text = generate_latest(registry)
    return text + generate_latest(http.exposed())


def metrics_response(ctx: Context, http: HttpMetrics) -> Response:
    return Response(exposition(ctx, http), media_type=CONTENT_TYPE_LATEST)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _is_metrics_token(ctx: Context, value: str) -> bool:
    expected = ctx.settings.metrics_token
    return expected is not None and hmac.compare_digest(
        value.encode(), expected.get_secret_value().encode()
    )


def presents_metrics_token(request: Request, ctx: Context) -> bool:
    """True when the request carries the configured metrics token (compared in constant
    time). A wrong one counts against the client's address, like a wrong API token,
    and past the brake's limit raises too_many_attempts; the right one always passes."""
    value = _bearer(request)
    if value is None:
        return False
    if _is_metrics_token(ctx, value):
        return True
    _count_wrong(request, ctx, METRICS_TOKEN_ACCOUNT)
    return False


def trusted_caller(request: Request, ctx: Context) -> bool:
    """May see /healthz's and /readyz's details: the metrics token's holder, or an admin's
    API token (the policy's is_admin). Anyone else learns only ready or not."""
    value = _bearer(request)
    if value is None:
        return False
    if _is_metrics_token(ctx, value):
        return True
    holder = resolve_token(ctx, value)
    if holder is None:
        _count_wrong(request, ctx, login_brake.API_TOKEN_ACCOUNT)
        return False
    return policy.is_admin(holder.user)


def _count_wrong(request: Request, ctx: Context, account: str) -> None:
    address = client_address(request, ctx.settings)
    login_brake.check(ctx, account, address)
    login_brake.failed(ctx, account, address)


def install(app: FastAPI, http: HttpMetrics) -> None:
    """GET /metrics on the main address, for the holder of CADENZA_METRICS_TOKEN."""

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """The Prometheus text format; 404 unless a metrics token is configured."""
        ctx: Context = request.app.state.ctx
        if ctx.settings.metrics_token is None:
            raise CadenzaError(
                ErrorCode.NOT_FOUND,
                "metrics are off here: set CADENZA_METRICS_TOKEN or CADENZA_METRICS_ADDRESS",
            )
        if not presents_metrics_token(request, ctx):
            raise CadenzaError(
                ErrorCode.UNAUTHENTICATED,
                "send the metrics token as 'Authorization: Bearer <token>'",
            )
        return metrics_response(ctx, http)


def readiness_details(ctx: Context) -> dict[str, Any]:
    """What /healthz and /readyz add for the metrics token's holder or an admin: the
    version, the schema's revision against the code's, and the workers' last tick
    (unknown while the schema is behind: the heartbeat table may not exist yet)."""
    now = ctx.clock.now()
    schema = state.schema_version(ctx)
    last = heartbeat.last_tick(ctx) if schema.up_to_date else None
    recent = len(heartbeat.recent(ctx)) if schema.up_to_date else None
    return {
        "version": __version__,
        "schema": {"current": schema.current, "head": schema.head, "up_to_date": schema.up_to_date},
        "worker": {
            "last_tick_at": last.isoformat() if last else None,
            "age_seconds": round((now - last).total_seconds(), 3) if last else None,
            "recent_workers": recent,
        },
    }
