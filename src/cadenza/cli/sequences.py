"""`cadenza sequences …`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.sequences import create_sequence, get_sequence, list_sequences

app = typer.Typer(help="Sequences.", no_args_is_help=True)


@app.command("list")
@fails_cleanly
def list_all() -> None:
    """List sequences with their number of steps and follow-up settings."""
    table = Table("id", "name", "steps", "follow-up days", "send window")
    for s in list_sequences(make_context()):
        window = s.settings.get("send_window")
        table.add_row(
            str(s.id),
            s.name,
            str(len(s.steps)),
            s.settings.get("follow_up_days", ""),
            f"{window['start']}–{window['end']}" if window else "any time",
        )
    console.print(table)


@app.command("show")
@fails_cleanly
def show(sequence_id: int) -> None:
    """Show a sequence's settings and steps."""
    sequence = get_sequence(make_context(), sequence_id)
    console.print(f"[bold]{sequence.name}[/] (#{sequence.id})")
    console.print_json(data=sequence.settings)
    table = Table("step", "type", "wait", "subject / task", "threaded with")
    for step in sequence.steps:
        wait = f"{step.delay_days}d {step.delay_hours}h" if step.position > 1 else "—"
        table.add_row(
            str(step.position),
            step.type if step.type != "task" else f"task ({step.task_type})",
            wait,
            step.subject or step.task_title or "",
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
