"""`cadenza sequences …`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.enums import Sharing, StepType
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.analytics.results import sequence_report
from cadenza.services.analytics.variants import VariantSplit
from cadenza.services.sequences.catalog import (
    archive_sequence,
    create_sequence,
    get_sequence,
    list_sequences,
    step_specs,
    unarchive_sequence,
)
from cadenza.services.sequences.playbooks import (
    clone_sequence,
    list_folders,
    rename_folder,
    update_placement,
)
from cadenza.services.sequences.preview import SAMPLE_CONTACT, step_headlines

app = typer.Typer(help="Sequences.", no_args_is_help=True)


@app.command("list")
@fails_cleanly
def list_all(
    archived: bool = typer.Option(False, "--archived", help="List the archived sequences"),
    folder: str = typer.Option(None, "--folder", help='Only this folder ("" for none)'),
    shared: Sharing = typer.Option(None, "--shared", help="Only those shared this way"),
    templates: bool = typer.Option(False, "--templates", help="Only sequence templates"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """List the sequences you may see, with their folder, sharing, number of steps and
    follow-up settings."""
    ctx = make_context()
    table = Table("id", "name", "folder", "sharing", "steps", "follow-up days", "send window")
    found = list_sequences(
        ctx, archived=archived, folder=folder, sharing=shared, templates=templates or None,
        actor_id=acting_user(ctx, as_user).id,
    )  # fmt: skip
    for s in found:
        window = s.settings.get("send_window")
        table.add_row(
            str(s.id),
            s.name + (" (template)" if s.is_template else ""),
            s.folder or "",
            s.sharing,
            str(len(s.steps)),
            s.settings.get("follow_up_days", ""),
            f"{window['start']}–{window['end']}" if window else "any time",
        )
    console.print(table)


@app.command("show")
@fails_cleanly
def show(sequence_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Show a sequence's settings and steps."""
    ctx = make_context()
    sequence = get_sequence(ctx, sequence_id, actor_id=acting_user(ctx, as_user).id)
    console.print(f"[bold]{sequence.name}[/] (#{sequence.id})")
    console.print(
        f"folder: {sequence.folder or '—'} · sharing: {sequence.sharing}"
        + (" · sequence template" if sequence.is_template else "")
    )
    if sequence.archived_at:
        console.print(
            f"archived {sequence.archived_at:%Y-%m-%d %H:%M} UTC: nobody new can be enrolled "
            f"(cadenza sequences unarchive {sequence.id})"
        )
    console.print_json(data=sequence.settings)
    table = Table("step", "type", "wait", "subject / task (sample data)", "threaded with")
    specs = step_specs(sequence)
    settings = SequenceSettings.from_dict(sequence.settings)
    headlines = step_headlines(
        specs, build_context(SAMPLE_CONTACT, {}, {}), thread_follow_ups=settings.thread_follow_ups
    )
    for step in sequence.steps:
        wait = f"{step.delay_days}d {step.delay_hours}h" if step.position > 1 else "—"
        table.add_row(
            str(step.position),
            step.type if step.type != StepType.TASK else f"task ({step.task_type})",
            wait,
            headlines[step.position],
            str(step.thread_with_step or ""),
        )
    console.print(table)


@app.command("create")
@fails_cleanly
def create(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help='JSON: {"name", "settings", "steps": [...]}'
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Create a sequence from a JSON file (the API's sequence shape)."""
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{file} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the file must hold one JSON object")
    ctx = make_context()
    sequence = create_sequence(
        ctx,
        acting_user(ctx, as_user).id,
        spec.get("name"),
        settings=spec.get("settings"),
        steps=spec.get("steps"),
    )
    console.print(f"sequence {sequence.id} created: {sequence.name} ({len(sequence.steps)} steps)")


@app.command("archive")
@fails_cleanly
def archive(sequence_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Archive a sequence: nobody new can be enrolled; enrollments in flight go on."""
    ctx = make_context()
    sequence = archive_sequence(ctx, sequence_id, actor_id=acting_user(ctx, as_user).id)
    console.print(f"sequence {sequence.id} archived: {sequence.name}")


@app.command("unarchive")
@fails_cleanly
def unarchive(
    sequence_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    """Bring an archived sequence back: listed again and open to enrollment."""
    ctx = make_context()
    sequence = unarchive_sequence(ctx, sequence_id, actor_id=acting_user(ctx, as_user).id)
    console.print(f"sequence {sequence.id} unarchived: {sequence.name}")


@app.command("clone")
@fails_cleanly
def clone(
    sequence_id: int,
    name: str = typer.Option(None, "--name", help='Default "Copy of …"'),
    folder: str = typer.Option(None, "--folder", help="Default: the source's folder"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Copy a sequence (steps, settings, folder) into a new private one of yours; from a
    sequence template, this is how a sequence is created from it."""
    ctx = make_context()
    extra = {} if folder is None else {"folder": folder}
    copy = clone_sequence(ctx, sequence_id, acting_user(ctx, as_user).id, name=name, **extra)
    console.print(f"sequence {copy.id} created from {sequence_id}: {copy.name} (private)")


@app.command("share")
@fails_cleanly
def share(
    sequence_id: int,
    sharing: Sharing = typer.Argument(..., help="private, team_use or team_edit"),
    template: bool = typer.Option(
        None, "--template/--no-template", help="Offer it as a sequence template, or stop"
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Who else may use (enroll into) or edit a sequence: its owner and admins decide."""
    ctx = make_context()
    extra = {} if template is None else {"is_template": template}
    sequence = update_placement(
        ctx, sequence_id, actor_id=acting_user(ctx, as_user).id, sharing=sharing, **extra
    )
    flag = " (sequence template)" if sequence.is_template else ""
    console.print(f"sequence {sequence.id} is now {sequence.sharing}{flag}: {sequence.name}")


@app.command("move")
@fails_cleanly
def move(
    sequence_id: int,
    folder: str = typer.Argument(..., help='Folder name; "" takes it out of any folder'),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Move a sequence into a folder (a new name makes a new folder)."""
    ctx = make_context()
    sequence = update_placement(
        ctx, sequence_id, actor_id=acting_user(ctx, as_user).id, folder=folder
    )
    console.print(f"sequence {sequence.id} is in folder {sequence.folder or '—'}")


@app.command("folders")
@fails_cleanly
def folders(
    archived: bool = typer.Option(False, "--archived", help="Folders of archived sequences"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """The folders holding sequences you may see."""
    ctx = make_context()
    table = Table("folder", "sequences")
    for found in list_folders(ctx, actor_id=acting_user(ctx, as_user).id, archived=archived):
        table.add_row(found.name, str(found.sequences))
    console.print(table)


@app.command("rename-folder")
@fails_cleanly
def rename(
    folder: str,
    name: str,
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Rename a folder on every sequence in it (you must be allowed to edit each)."""
    ctx = make_context()
    count = rename_folder(ctx, folder, name, actor_id=acting_user(ctx, as_user).id)
    console.print(f"folder {folder} renamed to {name.strip()} on {count} sequence(s)")


@app.command("analytics")
@fails_cleanly
def analytics_command(
    sequence_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    """Sent, delivered, opened, clicked, replied, bounced, … with rates, per step."""
    ctx = make_context()
    report = sequence_report(ctx, sequence_id, actor_id=acting_user(ctx, as_user).id)
    counts, rates = report.counts, report.rates
    console.print(
        f"{counts.enrolled} enrolled · {counts.active} active · {counts.finished} finished · "
        f"{counts.unenrolled} unenrolled {counts.unenrolled_by_reason or ''}"
    )
    console.print(
        "rates: " + ", ".join(f"{name} {_percent(value)}" for name, value in rates.items())
    )
    table = Table("step", "type", "sent", "delivered", "bounced", "opened", "clicked", "replied",
                  "meetings", "open rate", "reply rate")  # fmt: skip
    for step, outcomes in [*report.steps, (None, report.outcomes)]:
        table.add_row(
            str(step.position) if step else "all",
            step.type if step else "",
            *(str(getattr(outcomes, f)) for f in
              ("sent", "delivered", "bounced", "opened", "clicked", "replied", "meetings_booked")),
            _percent(outcomes.rates["open_rate"]),
            _percent(outcomes.rates["reply_rate"] if step else rates["reply_rate"]),
        )  # fmt: skip
        if step is not None and step.position in report.variants:
            _variant_rows(table, step.position, report.variants[step.position])
    console.print(table)
    for position, split in sorted(report.variants.items()):
        test = f"{split.test} p={split.p_value}" if split.p_value is not None else "no test yet"
        won = f", winner {split.winner} since {split.decided_at:%Y-%m-%d}" if split.winner else ""
        console.print(f"step {position} variants: {test}{won}")


def _variant_rows(table: Table, position: int, split: VariantSplit) -> None:
    for v in split.variants:
        interval = v.reply_rate_interval
        table.add_row(
            f"{position}{v.label}", "variant",
            *(str(getattr(v, f)) for f in
              ("sent", "delivered", "bounced", "opened", "clicked", "replied")), "",
            _percent(v.rates["open_rate"]),
            _percent(v.rates["reply_rate"])
            + (f" ({_percent(interval[0])}–{_percent(interval[1])})" if interval else ""),
        )  # fmt: skip


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"
