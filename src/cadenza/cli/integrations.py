"""`cadenza user profile …` (signature and meeting link) and `cadenza integrations …`
(the Cal.com and Calendly booking webhooks' signing secrets)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.inbound.bookings import BookingProvider
from cadenza.services.accounts import profile
from cadenza.services.accounts.users import find_user_by_email
from cadenza.services.signals import bookings

app = typer.Typer(help="Booking webhooks (Cal.com, Calendly).", no_args_is_help=True)


@fails_cleanly
def user_profile(
    email: str = typer.Argument(..., help="Whose profile (an admin may change anyone's)."),
    signature_file: Path = typer.Option(
        None, "--signature-file", help="Read the HTML signature from this file ('-': stdin)."
    ),
    signature: str = typer.Option(None, "--signature", help="The HTML signature itself."),
    meeting_link: str = typer.Option(None, "--meeting-link", help="An http(s) booking URL."),
    clear_signature: bool = typer.Option(False, "--clear-signature"),
    clear_meeting_link: bool = typer.Option(False, "--clear-meeting-link"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Show, or set, a user's email signature and meeting link."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    target = find_user_by_email(ctx, email)
    changes: dict[str, str | None] = {}
    if signature_file is not None:
        text = typer.get_text_stream("stdin").read() if str(signature_file) == "-" else None
        changes["signature_html"] = text if text is not None else signature_file.read_text()
    elif signature is not None:
        changes["signature_html"] = signature
    if clear_signature:
        changes["signature_html"] = None
    if meeting_link is not None:
        changes["meeting_link"] = meeting_link
    if clear_meeting_link:
        changes["meeting_link"] = None
    if changes:
        found = profile.update_profile(ctx, actor.id, target.id, changes)
    else:
        found = profile.get_profile(ctx, actor.id, target.id)
    console.print(f"meeting link: {found.meeting_link or '—'}", highlight=False)
    console.print("signature:", highlight=False)
    console.print(found.signature_html or "—", highlight=False, markup=False)


@app.command("set-secret")
@fails_cleanly
def set_secret(
    provider: BookingProvider = typer.Argument(..., help="calcom or calendly"),
    secret: str = typer.Option(
        ...,
        prompt="Signing secret",
        hide_input=True,
        envvar="CADENZA_BOOKING_SECRET",
        help="The webhook's secret (Cal.com) or signing key (Calendly); prompted.",
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Set the secret a scheduler signs its webhooks with (kept sealed, never shown)."""
    ctx = make_context()
    bookings.set_secret(ctx, acting_user(ctx, as_user).id, provider, secret)
    console.print(f"{provider} signing secret set; webhook: /api/v1/integrations/{provider}")


@app.command("clear-secret")
@fails_cleanly
def clear_secret(
    provider: BookingProvider = typer.Argument(..., help="calcom or calendly"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Forget the secret: the scheduler's deliveries are refused until one is set."""
    ctx = make_context()
    removed = bookings.clear_secret(ctx, acting_user(ctx, as_user).id, provider)
    console.print(f"{provider} signing secret {'removed' if removed else 'was not set'}")


@app.command("status")
@fails_cleanly
def status(as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Which schedulers have a signing secret (never the secret)."""
    ctx = make_context()
    table = Table("provider", "secret", "set at", "webhook path")
    for row in bookings.secret_status(ctx, acting_user(ctx, as_user).id):
        table.add_row(
            str(row.provider),
            "set" if row.configured else "none",
            str(row.set_at or "—"),
            f"/api/v1/integrations/{row.provider}",
        )
    console.print(table)
