"""`cadenza user …`, `cadenza token …`, `cadenza mailboxes …`."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli import identity
from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.mailboxes import (
    create_mailbox,
    list_mailboxes,
    reconnect_mailbox,
    update_mailbox,
)
from cadenza.services.accounts.users import (
    change_password,
    create_token,
    create_user,
    find_user_by_email,
    revoke_all_tokens,
    revoke_token,
    set_active,
)
from cadenza.services.analytics.mailbox_health import mailbox_health
from cadenza.services.enrollment.reminders import get_preferences, update_preferences

user_app = typer.Typer(help="Users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
mailbox_app = typer.Typer(help="Sending mailboxes.", no_args_is_help=True)


@user_app.command("create")
@fails_cleanly
def user_create(
    email: str,
    firstname: str = typer.Option("", help="First name (the {{ sender.firstname }} token)."),
    lastname: str = typer.Option(""),
    role: str = typer.Option("member", help="admin, member or viewer."),
    can_enroll: bool = typer.Option(
        True, "--can-enroll/--no-enroll", help="May this user enroll contacts?"
    ),
    can_override_rules: bool = typer.Option(
        False,
        "--can-override-rules/--no-override-rules",
        help="May this user enroll a contact an enrollment rule refuses? (Admins always may.)",
    ),
    timezone: str = typer.Option(None, help="IANA time zone, e.g. Europe/Berlin."),
    password: str = typer.Option(
        None, prompt=True, hide_input=True, confirmation_prompt=True, help="Login password."
    ),
) -> None:
    """Create a user who can log in and enroll contacts."""
    user = create_user(
        make_context(),
        email,
        firstname=firstname,
        lastname=lastname,
        role=role,
        timezone=timezone,
        password=password,
        can_enroll=can_enroll,
        can_override_enrollment_rules=can_override_rules,
    )
    console.print(f"user {user.id} created: {user.email} ({user.role})")


@user_app.command("password")
@fails_cleanly
def user_password(
    email: str,
    password: str = typer.Option(
        ...,
        prompt="New password",
        hide_input=True,
        confirmation_prompt=True,
        envvar="CADENZA_NEW_PASSWORD",
        help="The new password (prompted; never an argument).",
    ),
) -> None:
    """Set a user's password (whoever runs the CLI administers the installation); every
    web session of that user ends."""
    ctx = make_context()
    user = change_password(ctx, find_user_by_email(ctx, email).id, password)
    console.print(f"password of {user.email} changed; their sessions are ended")


@user_app.command("deactivate")
@fails_cleanly
def user_deactivate(email: str) -> None:
    """No sign-in, no API token, every session ended; their data and history stay."""
    ctx = make_context()
    user = set_active(ctx, find_user_by_email(ctx, email).id, False)
    console.print(f"{user.email} is deactivated")


@user_app.command("activate")
@fails_cleanly
def user_activate(email: str) -> None:
    """Let a deactivated user sign in again (their revoked tokens stay revoked)."""
    ctx = make_context()
    user = set_active(ctx, find_user_by_email(ctx, email).id, True)
    console.print(f"{user.email} is active")


@token_app.command("revoke")
@fails_cleanly
def token_revoke(
    token_id: int = typer.Argument(None, help="The token to revoke; omit with --all."),
    all_tokens: bool = typer.Option(False, "--all", help="Every live token of the user."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Revoke an API token of the user (or all of them): it stops working at once."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    if all_tokens:
        revoked = revoke_all_tokens(ctx, user.id, actor_id=user.id)
        console.print(f"{revoked} token(s) of {user.email} revoked")
    elif token_id is not None:
        revoke_token(ctx, user.id, token_id, actor_id=user.id)
        console.print(f"token {token_id} revoked")
    else:
        raise typer.BadParameter("give a TOKEN_ID or --all")


@user_app.command("prefs")
@fails_cleanly
def user_prefs(
    timing: str = typer.Option(
        None, help="Task reminders: none, at_due or before (with --minutes-before)."
    ),
    minutes_before: int = typer.Option(None, help="Minutes before a task is due (0-10080)."),
    digest: bool = typer.Option(
        None, "--digest/--no-digest", help="A daily email of the day's tasks."
    ),
    digest_hour: int = typer.Option(None, help="The local hour of the digest (0-23)."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Show your task reminder and daily digest preferences; with options, change them."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    given = {
        "timing": timing,
        "minutes_before": minutes_before,
        "digest": digest,
        "digest_hour": digest_hour,
    }
    changes = {key: value for key, value in given.items() if value is not None}
    if changes:
        prefs = update_preferences(ctx, user.id, changes, actor_id=user.id)
    else:
        prefs = get_preferences(ctx, user.id, actor_id=user.id)
    when = {"none": "never", "at_due": "when due"}.get(
        prefs.timing, f"{prefs.minutes_before} minutes before due"
    )
    console.print(f"task reminders: {when}")
    if not prefs.digest:
        console.print("daily digest: off")
    elif prefs.digest_mailbox is None:
        console.print("daily digest: on, but you have no mailbox: none is sent")
    else:
        console.print(
            f"daily digest: at {prefs.digest_hour:02d}:00 {prefs.timezone}, "
            f"from {prefs.digest_mailbox}",
            highlight=False,
        )


@token_app.command("create")
@fails_cleanly
def token_create(
    name: str = typer.Option("cli", help="What the token is for."),
    scope: list[str] = typer.Option(
        None, "--scope", help="Limit it (admins, for an integration): events."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Create an API token; it is shown once and only its hash is stored."""
    ctx = make_context()
    issued = create_token(ctx, acting_user(ctx, as_user).id, name, scopes=scope or None)
    console.print(issued.token, highlight=False)


@mailbox_app.command("create")
@fails_cleanly
def mailbox_create(
    from_email: str,
    from_name: str = typer.Option(""),
    transport: str = typer.Option("capture", help="capture or smtp."),
    smtp_host: str = typer.Option(None),
    smtp_port: int = typer.Option(None),
    smtp_security: str = typer.Option("starttls", help="none, starttls or tls."),
    smtp_username: str = typer.Option(None),
    smtp_password: str = typer.Option(None, envvar="CADENZA_SMTP_PASSWORD"),
    per_minute_limit: int = typer.Option(10),
    daily_limit: int = typer.Option(1000),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Connect a mailbox to send from (owned by the acting user)."""
    ctx = make_context()
    mailbox = create_mailbox(
        ctx,
        acting_user(ctx, as_user).id,
        from_email,
        from_name=from_name,
        transport=transport,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_security=smtp_security,
        smtp_username=smtp_username,
        smtp_password=smtp_password,
        per_minute_limit=per_minute_limit,
        daily_limit=daily_limit,
    )
    console.print(f"mailbox {mailbox.id} created: {mailbox.from_email} via {mailbox.transport}")


@mailbox_app.command("list")
@fails_cleanly
def mailbox_list() -> None:
    """List mailboxes (never their passwords)."""
    table = Table("id", "owner", "from", "transport", "limits", "state")
    for m in list_mailboxes(make_context()):
        table.add_row(
            str(m.id),
            str(m.owner_id),
            f"{m.from_name} <{m.from_email}>",
            m.transport,
            f"{m.per_minute_limit}/min, {m.daily_limit}/24h",
            "connected" if m.connected else f"disconnected: {m.disconnected_reason}",
        )
    console.print(table)


@mailbox_app.command("health")
@fails_cleanly
def mailbox_health_command(
    mailbox_id: int,
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Connected or not, last send, inbox polls, last error, limits, what waits and why."""
    ctx = make_context()
    health = mailbox_health(ctx, mailbox_id, actor_id=acting_user(ctx, as_user).id)
    box = health.mailbox
    state = "connected" if box.connected else f"disconnected: {box.disconnected_reason}"
    table = Table("", f"mailbox {box.id} ({box.from_email})", show_header=True)
    table.add_row("state", state)
    table.add_row(
        "replies", "detected (inbox read)" if health.detects_replies else "NOT detected: no inbox"
    )
    table.add_row("last sent", str(health.last_sent_at or "never"))
    table.add_row("last minute", f"{health.sent_last_minute} of {box.per_minute_limit}")
    table.add_row("last 24 hours", f"{health.sent_last_24h} of {box.daily_limit}")
    table.add_row("due now", str(health.due_now))
    for reason, count in sorted(health.waiting.items()):
        table.add_row(f"waiting: {reason}", str(count))
    table.add_row("needs review", str(health.needs_review))
    error = health.last_error
    table.add_row(
        "last error",
        "none"
        if error is None
        else f"{error.outcome} {error.code or ''} {error.reply or ''} ({error.at})",
    )
    for folder in health.inbox:
        table.add_row(f"inbox {folder.folder}", f"{folder.polled_at}: {folder.last_error or 'ok'}")
    for kind, count in health.signals.items():
        table.add_row(f"{kind} ({health.signal_days} days)", str(count))
    console.print(table)


@mailbox_app.command("reconnect")
@fails_cleanly
def mailbox_reconnect(
    mailbox_id: int,
    smtp_password: str = typer.Option(
        None, envvar="CADENZA_SMTP_PASSWORD", help="A new password, if that was the problem."
    ),
) -> None:
    """Mark a disconnected mailbox connected again; its waiting emails go out."""
    mailbox = reconnect_mailbox(make_context(), mailbox_id, smtp_password=smtp_password)
    console.print(f"mailbox {mailbox.id} ({mailbox.from_email}) is connected")


@mailbox_app.command("set-imap")
@fails_cleanly
def mailbox_set_imap(
    mailbox_id: int,
    host: str = typer.Option(..., help="IMAP server; the inbox poller reads its INBOX."),
    port: int = typer.Option(None, help="Default 993 for tls, 143 otherwise."),
    security: str = typer.Option("tls", help="none, starttls or tls."),
    username: str = typer.Option(None, help="Default: the mailbox's address."),
    password: str = typer.Option(None, envvar="CADENZA_IMAP_PASSWORD"),
) -> None:
    """Where replies and bounces for this mailbox arrive (the password is never shown)."""
    changes = {"imap_host": host, "imap_port": port, "imap_security": security}
    changes["imap_username"] = username
    if password is not None:
        changes["imap_password"] = password
    mailbox = update_mailbox(make_context(), mailbox_id, changes)
    console.print(f"mailbox {mailbox.id} reads its inbox at {mailbox.imap_host}")


@fails_cleanly
def use_command(
    email: str = typer.Argument(None, help="The user to act as from now on."),
    forget: bool = typer.Option(False, "--forget", help="Forget the remembered user."),
) -> None:
    """Remember who you act as, so commands need no --as once there are several users."""
    if forget:
        console.print(f"forgot the user in {identity.remember_user(None)}")
        return
    if not email:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "give the EMAIL of the user to act as")
    user = find_user_by_email(make_context(), email)
    path = identity.remember_user(user.email)
    console.print(f"acting as {user.email} ({user.role}) from now on; saved in {path}")


@fails_cleanly
def whoami_command(as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Show the user commands act as, and what chose them."""
    found = identity.resolve(make_context(), as_user)
    console.print(f"{found.user.email} ({found.user.role}), chosen by {found.source}")
