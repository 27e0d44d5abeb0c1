"""`cadenza records …`, `cadenza lists …`, `cadenza automation …`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cadenza.cli import enroll_options
from cadenza.cli.common import (
    AS_USER_HELP,
    acting_user,
    console,
    err_console,
    fails_cleanly,
    make_context,
    print_import_report,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.automation import rules as automation_rules
from cadenza.services.crm import lists, records
from cadenza.services.crm.contact_import import read_file
from cadenza.services.crm.record_import import import_records
from cadenza.services.enrollment import list_jobs as list_enrollment

app = typer.Typer(help="Companies, deals, tickets and custom object records.", no_args_is_help=True)
lists_app = typer.Typer(help="Static and active lists of contacts.", no_args_is_help=True)
automation_app = typer.Typer(help="Automation rules and their run logs.", no_args_is_help=True)


@app.command("import")
@fails_cleanly
def import_command(
    object_type: str = typer.Argument(..., help="company, deal, ticket or a custom type."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    key: str = typer.Option("name", help="Column that finds a record again on re-import."),
) -> None:
    """Import records from CSV: name, properties, contact_email / contact_emails (';') /
    primary_contact_email. Re-importing updates the records it names."""
    ctx = make_context()
    data = read_file(ctx, file)
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=err_console
    ) as progress:
        task = progress.add_task("import", total=None)
        report = import_records(
            ctx,
            object_type,
            data,
            key=key,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_import_report(report)


@app.command("types")
@fails_cleanly
def types_command() -> None:
    """Object types and their properties."""
    table = Table("name", "plural", "built in", "properties")
    for t in records.list_types(make_context()):
        props = ", ".join(f"{p['name']}:{p['type']}" for p in t.properties)
        table.add_row(t.name, t.plural, "yes" if t.builtin else "", props)
    console.print(table)


@app.command("list")
@fails_cleanly
def list_command(
    object_type: str,
    search: str = typer.Option(None, "--search", "-s", help="Part of the name."),
    limit: int = typer.Option(20),
    after: int = typer.Option(None, help="Show records after this id (the next page)."),
) -> None:
    _, found = records.search_records(make_context(), object_type, search, limit=limit + 1,
                                      after_id=after)  # fmt: skip
    table = Table("id", "name", "properties")
    for r in found[:limit]:
        table.add_row(str(r.id), r.name, json.dumps(r.properties, ensure_ascii=False))
    console.print(table)
    if len(found) > limit:
        console.print(f"more: --after {found[limit - 1].id}")


@lists_app.command("list")
@fails_cleanly
def lists_command() -> None:
    table = Table("id", "name", "kind", "members")
    for view in lists.list_lists(make_context(), limit=500):
        c = view.contact_list
        table.add_row(str(c.id), c.name, c.kind, str(view.size))
    console.print(table)


@lists_app.command("enroll")
@fails_cleanly
def enroll_list_command(
    list_id: int,
    sequence: int = typer.Option(..., "--sequence", help="Sequence id."),
    mailbox: int = enroll_options.MAILBOX,
    start_step: int = enroll_options.START_STEP,
    timezone: str = enroll_options.TIMEZONE,
    send_at: str = enroll_options.SEND_AT,
    token: list[str] = enroll_options.TOKEN,
    setting: list[str] = enroll_options.SETTING,
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Start enrolling every member with the same options as `cadenza enroll`; the worker
    runs it in batches (see `lists job`)."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    options = enroll_options.build(mailbox, start_step, timezone, send_at, token, setting)
    job = list_enrollment.start(ctx, user.id, list_id, sequence, options)
    console.print(f"list enrollment job {job.id}: {job.total} members, run by the worker")


@lists_app.command("job")
@fails_cleanly
def job_command(job_id: int) -> None:
    """A list enrollment job's progress."""
    job = list_enrollment.describe(list_enrollment.get_job(make_context(), job_id))
    console.print(
        f"job {job['id']} {job['status']}: {job['processed']}/{job['total']} processed, "
        f"{job['enrolled']} enrolled, {job['refused']} refused {job['refusals'] or ''}"
    )


@automation_app.command("create")
@fails_cleanly
def create_rule_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="JSON: name, sequence_id, trigger, conditions, action"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:  # fmt: skip
    """Create a rule (admins only) from a JSON file."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{file} is not JSON: {exc}") from None
    if not isinstance(spec, dict) or set(spec) - {
        "name", "sequence_id", "trigger", "conditions", "action", "enabled",
    }:  # fmt: skip
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "the file holds one object: name, sequence_id, trigger, conditions, action, enabled",
        )
    rule = automation_rules.create_rule(
        ctx, user.id, name=spec.get("name"), sequence_id=spec.get("sequence_id"),
        trigger=spec.get("trigger"), action=spec.get("action"),
        conditions=spec.get("conditions"), enabled=spec.get("enabled", True),
    )  # fmt: skip
    console.print(f"rule {rule.id} created ({'on' if rule.enabled else 'off'})")


@automation_app.command("list")
@fails_cleanly
def rules_command() -> None:
    table = Table("id", "name", "on", "sequence", "trigger", "action")
    for r in automation_rules.list_rules(make_context(), limit=500):
        table.add_row(str(r.id), r.name, "yes" if r.enabled else "no", str(r.sequence_id or ""),
                      json.dumps(r.trigger), json.dumps(r.action))  # fmt: skip
    console.print(table)


def _switch(rule_id: int, on: bool, as_user: str | None) -> None:
    ctx = make_context()
    user = acting_user(ctx, as_user)
    automation_rules.update_rule(ctx, user.id, rule_id, {"enabled": on})
    console.print(f"rule {rule_id} {'on' if on else 'off'}")


@automation_app.command("enable")
@fails_cleanly
def enable_command(rule_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)):
    """Switch a rule on: it acts on what happens from now on."""
    _switch(rule_id, True, as_user)


@automation_app.command("disable")
@fails_cleanly
def disable_command(rule_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)):
    _switch(rule_id, False, as_user)


@automation_app.command("runs")
@fails_cleanly
def runs_command(rule_id: int, limit: int = typer.Option(20)) -> None:
    """The run log, newest first: each contact's outcome and error code."""
    table = Table("id", "event", "contact", "outcome", "code", "enrollment", "at (UTC)")
    for r in automation_rules.list_runs(make_context(), rule_id, limit=limit):
        at = f"{r.at:%Y-%m-%d %H:%M:%S}"
        table.add_row(str(r.id), str(r.event_id), str(r.contact_id or ""), r.outcome,
                      r.code or "", str(r.enrollment_id or ""), at)  # fmt: skip
    console.print(table)
