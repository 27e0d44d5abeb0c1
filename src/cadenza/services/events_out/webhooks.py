"""Webhooks out: subscriptions, events written beside the changes they report, deliveries.

`emit` runs inside the transaction of the change (enrolled, sent, unenrolled, …), so a
delivery exists exactly when its change was committed — a rolled-back enrollment never
announces itself, and a committed one is never forgotten by a crash. The dispatcher
(engine/webhook_dispatch.py) sends them later from its own thread, so a slow receiver never
holds up an email.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import Connection, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from cadenza.domain import webhooks as rules
from cadenza.domain.enums import EnrollmentState, WebhookDeliveryStatus, WebhookEvent
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.outbound import AllowList
from cadenza.domain.policy import Action, Resource
from cadenza.services import outbound
from cadenza.services.access import authorize
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.events_out.listeners import listeners
from cadenza.services.read_models import copy_row
from cadenza.store.models import Webhook, WebhookAttempt, WebhookDelivery

LEASE = timedelta(minutes=2)  # longer than a POST may take (10 s timeout) by far

# Read for every event, the engine's sends included: run on the driver's cursor.
_NEW_DELIVERY = insert(WebhookDelivery).values(
    webhook_id=bindparam("webhook_id"),
    event_id=bindparam("event_id"),
    event_type=bindparam("event_type"),
    payload=bindparam("payload"),
    status=WebhookDeliveryStatus.PENDING,
    attempts=0,
    next_attempt_at=bindparam("now"),
    created_at=bindparam("now"),
)


# -- read models ------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookView:
    """A subscription as listed: never its signing secret (shown once, at creation)."""

    id: int
    url: str
    events: list[Any]
    description: str
    active: bool
    created_by_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Webhook) -> WebhookView:
        return copy_row(cls, row)


@dataclass(frozen=True)
class AttemptView:
    id: int
    delivery_id: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of an event to a webhook, as its log shows it."""

    id: int
    webhook_id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryView:
        return copy_row(cls, row)


# -- subscriptions ----------------------------------------------------------------------


def create_webhook(
    ctx: Context, actor_id: int | None, url: str, events: list[str], description: str = ""
) -> tuple[WebhookView, str]:
    """Returns the webhook and its signing secret, which is shown this once only."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.WEBHOOK, Action.CREATE)
        webhook = Webhook(
            url=_check_url(ctx, url),
            events=rules.check_events(events),
            secret=seal(ctx, secret, Webhook, "secret"),
            description=description,
            active=True,
            created_by_id=actor_id,
            created_at=ctx.clock.now(),
        )
        session.add(webhook)
        session.flush()
        record(session, ctx, actor_id, "webhook.create", "webhook", webhook.id, {"url": url})
    return WebhookView.of(webhook), secret


def _check_url(ctx: Context, url: str) -> str:
    """A URL whose host resolves inside (loopback, private, metadata…) is refused now,
    unless allow-listed; one that does not resolve yet is accepted, since the dispatcher
    checks the address again before every delivery anyway."""
    url = rules.check_url(url)
    parts = urlsplit(url)
    with contextlib.suppress(outbound.Unresolvable):
        outbound.webhook_target(parts.hostname, _port(parts), allow_list(ctx))
    return url


def allow_list(ctx: Context) -> AllowList:
    return AllowList.parse(ctx.settings.outbound_allow)


def _port(parts) -> int:
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the URL's port is not a number") from None


def list_webhooks(ctx: Context) -> list[WebhookView]:
    with ctx.db.read() as session:
        return [WebhookView.of(w) for w in session.scalars(select(Webhook).order_by(Webhook.id))]


def get_webhook(ctx: Context, webhook_id: int) -> WebhookView:
    with ctx.db.read() as session:
        return WebhookView.of(_fetch(session, webhook_id))


def update_webhook(
    ctx: Context, actor_id: int | None, webhook_id: int, changes: dict
) -> WebhookView:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.WEBHOOK, Action.UPDATE)
        webhook = _fetch(session, webhook_id, for_update=True)
        if "url" in changes:
            webhook.url = _check_url(ctx, changes["url"])
        if "events" in changes:
            webhook.events = rules.check_events(changes["events"])
        if "description" in changes:
            webhook.description = changes["description"]
        if "active" in changes:
            webhook.active = bool(changes["active"])
        record(session, ctx, actor_id, "webhook.update", "webhook", webhook_id, dict(changes))
    return WebhookView.of(webhook)


def delete_webhook(ctx: Context, actor_id: int | None, webhook_id: int) -> None:
    """Its pending deliveries go with it: nobody is listening for them any more."""
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.WEBHOOK, Action.DELETE)
        session.delete(_fetch(session, webhook_id, for_update=True))
        record(session, ctx, actor_id, "webhook.delete", "webhook", webhook_id)


def send_test(ctx: Context, webhook_id: int) -> DeliveryView:
    """Queues a `ping` for this webhook only, whatever events it subscribes to."""
    with ctx.db.transaction() as session:
        _fetch(session, webhook_id)
        now = ctx.clock.now()
        event_id = _new_event_id()
        delivery = WebhookDelivery(
            webhook_id=webhook_id,
            event_id=event_id,
            event_type=rules.PING,
            payload=_payload(event_id, rules.PING, now, {"webhook_id": webhook_id}),
            status=WebhookDeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        session.flush()
        return DeliveryView.of(delivery)


def list_deliveries(
    ctx: Context, webhook_id: int, *, limit: int, before: int | None = None
) -> list[tuple[DeliveryView, list[AttemptView]]]:
    """Newest first, each with its attempts (time, status code or error, duration)."""
    with ctx.db.read() as session:
        _fetch(session, webhook_id)
        query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        deliveries = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
        attempts: dict[int, list[AttemptView]] = {d.id: [] for d in deliveries}
        if deliveries:
            for attempt in session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(attempts))
                .order_by(WebhookAttempt.id)
            ):
                attempts[attempt.delivery_id].append(copy_row(AttemptView, attempt))
        return [(DeliveryView.of(d), attempts[d.id]) for d in deliveries]


# -- events -----------------------------------------------------------------------------


def emit(
    session: Session | Connection, now: datetime, event_type: WebhookEvent, data: dict
) -> None:
    """One delivery per active webhook subscribed to `event_type`, in the caller's
    transaction. With no webhooks this is one small read."""
    connection = session.connection() if isinstance(session, Session) else session
    active = listeners(connection).webhooks
    targets = [webhook_id for webhook_id, events in active if event_type in events]
    if not targets:
        return
    rows = []
    for webhook_id in targets:
        event_id = _new_event_id()
        rows.append(
            {
                "webhook_id": webhook_id,
                "event_id": event_id,
                "event_type": event_type,
                "payload": _payload(event_id, event_type, now, data),
                "now": now,
            }
        )
    connection.execute(_NEW_DELIVERY, rows)


class EnrollmentLike(Protocol):
    """What an enrollment event reads of an enrollment: its row, or a plain one."""

    @property
    def id(self) -> int: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def sequence_id(self) -> int: ...
    @property
    def mailbox_id(self) -> int: ...
    @property
    def state(self) -> EnrollmentState: ...


def enrollment_event(enrollment: EnrollmentLike) -> dict[str, Any]:
    """What every enrollment event carries, so a receiver needs no call back to act."""
    return {
        "enrollment_id": enrollment.id,
        "contact_id": enrollment.contact_id,
        "sequence_id": enrollment.sequence_id,
        "mailbox_id": enrollment.mailbox_id,
        "state": enrollment.state,
    }


def _payload(event_id: str, event_type: str, now: datetime, data: dict) -> dict:
    return {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}


def _new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


# -- the dispatcher's side --------------------------------------------------------------


@dataclass(frozen=True)
class DueDelivery:
    id: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes
    attempt: int  # the number this try will be


def claim_due(ctx: Context, limit: int = 50) -> list[DueDelivery]:
    """Due deliveries, oldest first, leased so that another dispatcher skips them."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        rows = session.execute(
            select(WebhookDelivery, Webhook.url, Webhook.secret)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        ).all()
        due = []
        for delivery, url, secret in rows:
            delivery.locked_until = now + LEASE
            body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
            due.append(
                DueDelivery(
                    delivery.id, url, open_sealed(ctx, secret, Webhook, "secret"),
                    delivery.event_id, delivery.event_type, body,
                    delivery.attempts + 1,
                )
            )  # fmt: skip
        return due


def record_attempt(
    ctx: Context,
    delivery_id: int,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> WebhookDeliveryStatus | None:
    """2xx delivers; anything else retries with backoff, then fails. Returns the status
    (None: the delivery was deleted meanwhile, with its webhook)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status != WebhookDeliveryStatus.PENDING:
            return delivery.status if delivery else None
        delivery.attempts += 1
        delivery.locked_until = None
        delivery.last_status_code = status_code
        delivery.last_error = rules.excerpt(error) if error else None
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                at=now,
                status_code=status_code,
                error=delivery.last_error,
                duration_ms=duration_ms,
            )
        )
        if status_code is not None and 200 <= status_code < 300:
            delivery.status, delivery.delivered_at = WebhookDeliveryStatus.DELIVERED, now
        elif delivery.attempts >= rules.MAX_ATTEMPTS:
            delivery.status = WebhookDeliveryStatus.FAILED
        else:
            delivery.next_attempt_at = now + rules.backoff(delivery.attempts)
        return delivery.status


def next_due_at(ctx: Context) -> datetime | None:
    with ctx.db.read() as session:
        return session.scalar(
            select(WebhookDelivery.next_attempt_at)
            .where(WebhookDelivery.status == WebhookDeliveryStatus.PENDING)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(1)
        )


def _fetch(session: Session, webhook_id: int, *, for_update: bool = False) -> Webhook:
    webhook = session.get(Webhook, webhook_id, with_for_update=for_update or None)
    if webhook is None:
        raise CadenzaError(
            ErrorCode.NOT_FOUND, f"webhook {webhook_id} does not exist", {"id": webhook_id}
        )
    return webhook
