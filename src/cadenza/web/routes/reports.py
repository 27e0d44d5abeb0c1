"""Team reports over HTTP: per sequence, rep or step over a period beside the period
before, the replies and meetings per day, and CSV exports of a report and of its rows.
Definitions and who sees what: docs/reports.md."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cadenza.domain.enums import ExportRows, RepBasis, ReportBy
from cadenza.domain.report_period import period
from cadenza.services.analytics import exports, reports
from cadenza.web.auth import ApiUser, Ctx
from cadenza.web.errors import MAX_ID, error_responses

router = APIRouter(tags=["reports"])
ERRORS = error_responses(401, 403, 404, 422)


class FiguresOut(BaseModel):
    enrolled: int
    active: int
    finished: int
    sent: int
    delivered: int
    bounced: int
    opened: int
    clicked: int
    replied: int
    meetings_booked: int
    unsubscribed: int
    contacts_emailed: int
    tasks_done: int
    tasks_overdue: int
    calls: dict[str, int]
    rates: dict[str, float | None]


class RowOut(BaseModel):
    key: int | None
    label: str
    current: FiguresOut
    previous: FiguresOut
    deltas: dict[str, int]
    changes: dict[str, float | None]


class PeriodOut(BaseModel):
    start: date
    end: date


class ReportOut(BaseModel):
    by: ReportBy
    basis: RepBasis
    period: PeriodOut
    previous_period: PeriodOut
    own_work_only: bool
    rows: list[RowOut]
    total: RowOut


class SeriesOut(BaseModel):
    key: int | None
    label: str
    days: list[date]
    replied: list[int]
    meetings_booked: list[int]


def report_query(
    ctx: Ctx,
    by: ReportBy,
    start: date | None = Query(None, description="First day (UTC), YYYY-MM-DD"),
    end: date | None = Query(None, description="Last day (UTC), included; default today"),
    basis: RepBasis = Query(RepBasis.ENROLLED_BY, description="Whose work an enrollment is"),
    rep: int | None = Query(None, ge=1, le=MAX_ID, description="Only this rep's (user id)"),
    sequence: int | None = Query(None, ge=1, le=MAX_ID, description="Only this sequence"),
) -> reports.ReportQuery:
    chosen = period(start, end, today=ctx.clock.now().date())
    return reports.ReportQuery(by, chosen, basis, rep, sequence)


def _figures(figures: reports.Figures) -> dict[str, Any]:
    return {**figures.counts(), "calls": figures.calls, "rates": figures.rates}


def _row(row: reports.ReportRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "label": row.label,
        "current": _figures(row.current),
        "previous": _figures(row.previous),
        "deltas": row.deltas,
        "changes": row.changes,
    }


def _csv(chunks, name: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/reports/rows/{rows}", responses=ERRORS, response_class=StreamingResponse)
def export_rows(
    rows: ExportRows,
    user: ApiUser,
    ctx: Ctx,
    start: date | None = Query(None, description="First day (UTC), YYYY-MM-DD"),
    end: date | None = Query(None, description="Last day (UTC), included; default today"),
    basis: RepBasis = Query(RepBasis.ENROLLED_BY),
    rep: int | None = Query(None, ge=1, le=MAX_ID),
    sequence: int | None = Query(None, ge=1, le=MAX_ID),
) -> StreamingResponse:
    """CSV, streamed: enrollments made, tasks due, or messages sent in the period, each
    with its outcomes (docs/reports.md lists the columns)."""
    query = report_query(ctx, ReportBy.SEQUENCE, start, end, basis, rep, sequence)
    chunks = exports.export_rows(ctx, rows, query, actor_id=user.id)
    return _csv(chunks, f"{rows}-{query.period.start}-{query.period.end}")


@router.get("/reports/{by}", response_model=ReportOut, responses=ERRORS)
def team_report(
    by: ReportBy,
    user: ApiUser,
    ctx: Ctx,
    start: date | None = Query(None, description="First day (UTC), YYYY-MM-DD"),
    end: date | None = Query(None, description="Last day (UTC), included; default today"),
    basis: RepBasis = Query(RepBasis.ENROLLED_BY, description="Whose work an enrollment is"),
    rep: int | None = Query(None, ge=1, le=MAX_ID, description="Only this rep's (user id)"),
    sequence: int | None = Query(None, ge=1, le=MAX_ID, description="Only this sequence"),
) -> dict[str, Any]:
    """One row per sequence, rep or step (by=step needs sequence=ID), with the period
    before and the difference; a member sees their own work only."""
    query = report_query(ctx, by, start, end, basis, rep, sequence)
    report = reports.team_report(ctx, query, actor_id=user.id)
    return {
        "by": by,
        "basis": basis,
        "period": vars(query.period),
        "previous_period": vars(report.previous),
        "own_work_only": report.own_work_only,
        "rows": [_row(r) for r in report.rows],
        "total": _row(report.total),
    }


@router.get("/reports/{by}/csv", responses=ERRORS, response_class=StreamingResponse)
def team_report_csv(
    by: ReportBy,
    user: ApiUser,
    ctx: Ctx,
    start: date | None = Query(None),
    end: date | None = Query(None),
    basis: RepBasis = Query(RepBasis.ENROLLED_BY),
    rep: int | None = Query(None, ge=1, le=MAX_ID),
    sequence: int | None = Query(None, ge=1, le=MAX_ID),
) -> StreamingResponse:
    """The same report as CSV: each figure, its previous value and the difference."""
    query = report_query(ctx, by, start, end, basis, rep, sequence)
    report = reports.team_report(ctx, query, actor_id=user.id)
    return _csv(exports.report_csv(report), f"report-{by}-{query.period.start}-{query.period.end}")


@router.get("/reports/{by}/daily", response_model=list[SeriesOut], responses=ERRORS)
def daily(
    by: ReportBy,
    user: ApiUser,
    ctx: Ctx,
    start: date | None = Query(None),
    end: date | None = Query(None),
    basis: RepBasis = Query(RepBasis.ENROLLED_BY),
    rep: int | None = Query(None, ge=1, le=MAX_ID),
    sequence: int | None = Query(None, ge=1, le=MAX_ID),
) -> list[dict[str, Any]]:
    """Replies and meetings booked per UTC day and per row: what the charts draw."""
    query = report_query(ctx, by, start, end, basis, rep, sequence)
    return [vars(s) for s in reports.daily_signals(ctx, query, actor_id=user.id)]
