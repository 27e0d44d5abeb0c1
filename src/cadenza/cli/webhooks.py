"""`cadenza webhooks …`: subscribe URLs to events, send a test, read the delivery log."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain import policy
from cadenza.domain.policy import Action, Resource
from cadenza.domain.webhooks import EVENT_TYPES
from cadenza.services.events_out import webhooks

app = typer.Typer(help="Webhooks out: event notifications to your URLs.", no_args_is_help=True)


@app.command("create")
@fails_cleanly
def create_command(
    url: str,
    event: list[str] = typer.Option(..., "--event", help=f"Repeat: {', '.join(EVENT_TYPES)}."),
    description: str = typer.Option("", help="What it is for."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Subscribe URL to events; prints the signing secret, which is not shown again."""
    ctx = make_context()
    user = _admin(ctx, as_user)
    webhook, secret = webhooks.create_webhook(ctx, user.id, url, event, description)
    console.print(f"webhook {webhook.id} → {webhook.url}  events: {', '.join(webhook.events)}")
    console.print(f"signing secret (shown once): {secret}", highlight=False, markup=False)


@app.command("list")
@fails_cleanly
def list_command() -> None:
    table = Table("id", "url", "events", "active")
    for w in webhooks.list_webhooks(make_context()):
        table.add_row(str(w.id), w.url, ", ".join(w.events), "yes" if w.active else "no")
    console.print(table)


@app.command("test")
@fails_cleanly
def test_command(webhook_id: int) -> None:
    """Queue a `ping` delivery; a running worker sends it within a second or so."""
    delivery = webhooks.send_test(make_context(), webhook_id)
    console.print(f"ping {delivery.event_id} queued for webhook {webhook_id}")


@app.command("deliveries")
@fails_cleanly
def deliveries_command(webhook_id: int, limit: int = typer.Option(20)) -> None:
    """Newest first: status, attempts and the receiver's last answer."""
    table = Table("id", "event", "status", "attempts", "last answer", "created (UTC)")
    for d, attempts in webhooks.list_deliveries(make_context(), webhook_id, limit=limit):
        last = attempts[-1] if attempts else None
        answer = "" if last is None else str(last.status_code or last.error)
        table.add_row(
            str(d.id),
            d.event_type,
            d.status,
            str(d.attempts),
            answer,
            f"{d.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("delete")
@fails_cleanly
def delete_command(
    webhook_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    ctx = make_context()
    user = _admin(ctx, as_user)
    webhooks.delete_webhook(ctx, user.id, webhook_id)
    console.print(f"webhook {webhook_id} deleted")


def _admin(ctx, as_user: str | None):
    user = acting_user(ctx, as_user)
    policy.check(user, Resource.WEBHOOK, Action.READ)
    return user
