"""`cadenza reports …`: the team reports and their row exports (docs/reports.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.enums import ExportRows, RepBasis, ReportBy
from cadenza.domain.report_period import parse_day, period
from cadenza.services.analytics import exports, reports

app = typer.Typer(
    help="Team reports: per sequence, rep or step over a period.", no_args_is_help=True
)

FROM_HELP = "First day (UTC), YYYY-MM-DD; default: 30 days ending --to."
TO_HELP = "Last day (UTC), included, YYYY-MM-DD; default: today."
SHOWN = ("enrolled", "active", "finished", "sent", "delivered", "opened", "clicked", "replied",
         "meetings_booked", "bounced", "unsubscribed", "tasks_done", "tasks_overdue")  # fmt: skip


def _query(ctx, by, start, end, basis, rep, sequence) -> reports.ReportQuery:
    chosen = period(
        parse_day(start, "--from"), parse_day(end, "--to"), today=ctx.clock.now().date()
    )
    return reports.ReportQuery(ReportBy(by), chosen, RepBasis(basis), rep, sequence)


def _write(chunks, out: Path | None) -> None:
    if out is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            handle.write(chunk)
    console.print(f"written to {out}")


@app.command("show")
@fails_cleanly
def show_command(
    by: ReportBy = typer.Argument(..., help="sequence, rep or step (step needs --sequence)."),
    start: str = typer.Option(None, "--from", help=FROM_HELP),
    end: str = typer.Option(None, "--to", help=TO_HELP),
    basis: RepBasis = typer.Option(RepBasis.ENROLLED_BY, help="Whose work an enrollment is."),
    rep: int = typer.Option(None, help="Only this rep's work (user id).", min=1),
    sequence: int = typer.Option(None, help="Only this sequence (id).", min=1),
    as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout instead of a table."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Each figure over the period, with the change from the period before."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    query = _query(ctx, by, start, end, basis, rep, sequence)
    report = reports.team_report(ctx, query, actor_id=user.id)
    if as_csv:
        _write(exports.report_csv(report), None)
        return
    previous = report.previous
    console.print(
        f"{query.period.start} – {query.period.end}, compared with "
        f"{previous.start} – {previous.end}" + (" (your own work)" if report.own_work_only else "")
    )
    table = Table(str(by), *SHOWN, "reply rate", "calls")
    for row in [*report.rows, report.total]:
        counts, deltas = row.current.counts(), row.deltas
        rate = row.current.rates["reply_rate"]
        table.add_row(
            row.label,
            *(f"{counts[n]} ({deltas[n]:+d})" for n in SHOWN),
            "—" if rate is None else f"{rate:.0%}",
            ", ".join(f"{k} {v}" for k, v in sorted(row.current.calls.items())) or "—",
        )
    console.print(table)


@app.command("export")
@fails_cleanly
def export_command(
    rows: ExportRows = typer.Argument(..., help="enrollments, tasks or messages."),
    start: str = typer.Option(None, "--from", help=FROM_HELP),
    end: str = typer.Option(None, "--to", help=TO_HELP),
    basis: RepBasis = typer.Option(RepBasis.ENROLLED_BY, help="Whose work an enrollment is."),
    rep: int = typer.Option(None, help="Only this rep's work (user id).", min=1),
    sequence: int = typer.Option(None, help="Only this sequence (id).", min=1),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """The period's rows with their outcomes, as CSV, streamed in batches."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    query = _query(ctx, ReportBy.SEQUENCE, start, end, basis, rep, sequence)
    _write(exports.export_rows(ctx, rows, query, actor_id=user.id), out)
