"""The `cadenza` command line (Typer + Rich)."""

import typer

from cadenza.cli import (
    backup,
    contacts,
    db,
    dkim,
    doctor,
    enrollments,
    events,
    inbox,
    integrations,
    mailbox_oauth,
    outbox,
    records,
    reports,
    secrets,
    sequences,
    serve,
    tasks,
    templates,
    users,
    webhooks,
    worker,
)

app = typer.Typer(
    help="Cadenza: self-hosted sales sequences. Set CADENZA_DATABASE_URL to choose the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.command("demo")(db.demo)
app.add_typer(users.user_app, name="user")
app.command("use")(users.use_command)
app.command("whoami")(users.whoami_command)
app.add_typer(users.token_app, name="token")
app.add_typer(users.mailbox_app, name="mailboxes")
users.mailbox_app.command("connect")(mailbox_oauth.connect)
app.add_typer(contacts.app, name="contacts")
app.add_typer(sequences.app, name="sequences")
app.add_typer(templates.app, name="templates")
app.add_typer(templates.snippets_app, name="snippets")
app.command("enroll")(enrollments.enroll_command)
app.add_typer(enrollments.app, name="enrollments")
app.command("worker")(worker.worker)
app.add_typer(outbox.app, name="outbox")
app.add_typer(tasks.app, name="tasks")
app.add_typer(inbox.app, name="inbox")
app.command("serve")(serve.serve)
app.command("doctor")(doctor.doctor)
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(events.app, name="events")
app.add_typer(records.app, name="records")
app.add_typer(records.lists_app, name="lists")
app.add_typer(records.automation_app, name="automation")
app.add_typer(secrets.app, name="secrets")
app.add_typer(dkim.app, name="dkim")
app.add_typer(integrations.app, name="integrations")
users.user_app.command("profile")(integrations.user_profile)
app.add_typer(reports.app, name="reports")
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
