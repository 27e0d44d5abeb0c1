"""`cadenza enroll` and `cadenza enrollments …`."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli import enroll_options
from cadenza.cli.common import (
    AS_USER_HELP,
    acting_user,
    console,
    err_console,
    fails_cleanly,
    fmt_time,
    make_context,
)
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    EnrollWarningCode,
    PauseReason,
    StepRunStatus,
    TimelineMark,
    UnenrollReason,
)
from cadenza.services.analytics.results import enrollment_timeline
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.enroll import ContactRequest, enroll
from cadenza.services.enrollment.views import get_enrollment, list_enrollments, pause_reason

# Said on the contact's own line; the others come from the mailbox, said once.
PER_CONTACT_WARNINGS = {EnrollWarningCode.RULE_OVERRIDDEN, EnrollWarningCode.RESTARTED}

app = typer.Typer(help="Enrollments: list, show, pause, resume, unenroll.", no_args_is_help=True)


@fails_cleanly
def enroll_command(
    sequence_id: int = typer.Argument(..., help="The sequence to enroll in."),
    contact_ids: list[int] = typer.Argument(..., help="One or more contact ids."),
    mailbox: int = enroll_options.MAILBOX,
    start_step: int = enroll_options.START_STEP,
    timezone: str = enroll_options.TIMEZONE,
    send_at: str = enroll_options.SEND_AT,
    token: list[str] = enroll_options.TOKEN,
    setting: list[str] = enroll_options.SETTING,
    override: list[int] = enroll_options.OVERRIDE,
    dry_run: bool = typer.Option(False, help="Check and show the schedule; write nothing."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Enroll contacts in a sequence; prints each contact's result and schedule."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    options = enroll_options.build(mailbox, start_step, timezone, send_at, token, setting)
    contacts = [ContactRequest(cid) for cid in contact_ids]
    request = options.request(
        sequence_id, user.id, contacts, dry_run=dry_run, override_rules=list(override)
    )
    results = enroll(ctx, request)
    enrolled = 0
    for result in results:
        if result.ok:
            enrolled += 1
            verb = "would enroll" if dry_run else f"enrolled (enrollment {result.enrollment_id})"
            console.print(f"[green]✓[/] contact {result.contact_id}: {verb}, {result.timezone}")
            for step in result.schedule:
                console.print(f"    step {step.step}: {step.due_at:%a %Y-%m-%d %H:%M %Z}")
            for w in result.warnings:
                if w.code in PER_CONTACT_WARNINGS:
                    console.print(f"    [yellow]{w.code}[/]: {w.message}", highlight=False)
        else:
            hint = f" (override: --override {result.contact_id})" if result.overridable else ""
            console.print(
                f"[red]✗[/] contact {result.contact_id}: {result.code}: {result.message}{hint}",
                highlight=False,
            )
    summary = f"{enrolled} of {len(results)} contacts {'can be' if dry_run else ''} enrolled"
    console.print(summary.replace("  ", " "))
    # The same for every contact (they come from the mailbox): said once, after the count.
    warnings = {
        w.code: w.message for r in results for w in r.warnings if w.code not in PER_CONTACT_WARNINGS
    }
    for code, message in warnings.items():
        err_console.print(f"[yellow]warning[/] {code}: {message}", highlight=False)
    if enrolled == 0:
        raise typer.Exit(1)


@app.command("list")
@fails_cleanly
def list_command(
    sequence: int = typer.Option(None, help="Only this sequence."),
    contact: int = typer.Option(None, help="Only this contact."),
    state: str = typer.Option(None, help="active, paused, finished or unenrolled."),
    search: str = typer.Option(None, help="Contact email or name, or sequence name, contains."),
    newest: bool = typer.Option(False, "--newest", help="Newest first."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """List enrollments (a member's: the ones they made or that send from their mailbox)."""
    ctx = make_context()
    rows = list_enrollments(
        ctx,
        actor_id=acting_user(ctx, as_user).id,
        sequence_id=sequence,
        contact_id=contact,
        state=state,
        query=search,
        newest_first=newest,
    )
    table = Table("id", "contact", "sequence", "state", "time zone", "reason")
    for e in rows:
        table.add_row(
            str(e.id),
            e.contact_email or str(e.contact_id),
            str(e.sequence_id),
            e.state,
            e.timezone,
            e.reason or _pause_text(e),
        )
    console.print(table)


@app.command("show")
@fails_cleanly
def show_command(
    enrollment_id: int,
    viewer_tz: str = typer.Option(
        None, "--tz", help="Your time zone for the second column (default: the acting user's)."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Show an enrollment's steps and projected timeline, in their time and yours."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    view = get_enrollment(ctx, enrollment_id, actor_id=actor.id)
    e = view.enrollment
    if viewer_tz is None:
        viewer_tz = actor.timezone
    their_tz = parse_timezone(e.timezone)
    your_tz = parse_timezone(viewer_tz or ctx.settings.default_timezone)
    console.print(
        f"[bold]enrollment {e.id}[/]: {view.contact_name} <{view.contact_email}> "
        f"in “{view.sequence_name}” — {e.state}" + (f" ({e.reason})" if e.reason else "")
    )
    if view.pause_reason == PauseReason.OUT_OF_OFFICE:
        console.print(
            "paused by an out-of-office reply: resumes by itself "
            f"{fmt_time(e.resume_at, their_tz)} (their time), {fmt_time(e.resume_at, your_tz)}"
            " (yours)"
        )
    elif view.pause_reason == PauseReason.MANUAL:
        console.print("paused by a person: nothing is sent until someone resumes it")
    table = Table("step", "type", "title", "status", f"their time ({e.timezone})",
                  f"your time ({your_tz.key})")  # fmt: skip
    for line in view.steps:
        table.add_row(
            str(line.position),
            line.type,
            line.title,
            line.shown_status + (f" ({line.wait_reason})" if line.wait_reason else ""),
            _when(line, their_tz),
            _when(line, your_tz),
        )
    console.print(table)
    for problem in view.problems:
        console.print(
            f"[red]step {problem.position} {problem.status}[/] "
            f"{fmt_time(problem.at, your_tz)}: {problem.explanation}"
            + (f"\n  server reply: {problem.server_reply}" if problem.server_reply else ""),
            highlight=False,
        )


def _pause_text(enrollment) -> str:
    """The list's reason column for a paused enrollment: why, and until when (their time)."""
    reason = pause_reason(enrollment)
    if reason == PauseReason.OUT_OF_OFFICE:
        back = fmt_time(enrollment.resume_at, parse_timezone(enrollment.timezone))
        return f"out of office, resumes {back}"
    return "paused by a person" if reason == PauseReason.MANUAL else ""


def _when(line, tz) -> str:
    on_hold = line.status in (StepRunStatus.PAUSED, TimelineMark.PROJECTED)
    if on_hold and line.completed_at is None and line.due_at is None:
        return "on hold until resumed"
    return fmt_time(line.completed_at or line.due_at, tz)


def _act(action, ids: list[int], as_user: str | None, **kwargs) -> None:
    """Acts as the CLI's user (`--as`, CADENZA_CLI_USER, `cadenza use`): a member changes
    only the enrollments they own, as in the API and the web app."""
    ctx = make_context()
    actor_id = acting_user(ctx, as_user).id
    failed = 0
    for outcome in enrollment_control.for_many(action, ctx, ids, actor_id=actor_id, **kwargs):
        if outcome.ok:
            console.print(f"[green]✓[/] enrollment {outcome.enrollment_id}")
        else:
            failed += 1
            err_console.print(
                f"[red]✗[/] enrollment {outcome.enrollment_id}: {outcome.code}: {outcome.message}",
                highlight=False,
            )
    if failed:
        raise typer.Exit(1)


@app.command("pause")
@fails_cleanly
def pause_command(
    enrollment_ids: list[int], as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    """Pause enrollments; the remaining wait is kept for when they resume."""
    _act(enrollment_control.pause, enrollment_ids, as_user)


@app.command("resume")
@fails_cleanly
def resume_command(
    enrollment_ids: list[int], as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    """Resume paused enrollments."""
    _act(enrollment_control.resume, enrollment_ids, as_user)


@app.command("unenroll")
@fails_cleanly
def unenroll_command(
    enrollment_ids: list[int],
    reason: str = typer.Option(
        UnenrollReason.MANUAL.value, help="Why (recorded with the enrollment)."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Unenroll: cancels pending steps and open tasks."""
    _act(enrollment_control.unenroll, enrollment_ids, as_user, reason=reason)


@app.command("events")
@fails_cleanly
def events_command(
    enrollment_id: int,
    viewer_tz: str = typer.Option("UTC", "--tz", help="Show times in this zone."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """One enrollment's timeline: sent, opened, clicked, replied, tasks, the end."""
    tz = parse_timezone(viewer_tz)
    ctx = make_context()
    actor_id = acting_user(ctx, as_user).id
    table = Table("when", "what", "step", "detail")
    for event in enrollment_timeline(ctx, enrollment_id, actor_id=actor_id):
        what = f"{event.kind} (flagged: {event.flagged})" if event.flagged else event.kind
        table.add_row(
            fmt_time(event.at, tz), what, str(event.step_position or ""), event.detail or ""
        )
    console.print(table)
