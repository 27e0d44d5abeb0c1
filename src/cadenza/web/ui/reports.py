"""The reports page: a team report filtered by grouping, period, rep and sequence, with
the period before, a funnel and a replies-and-meetings chart per row, and CSV exports.

The filters are a GET form, so a report is a link a manager can bookmark or share; the
CSV links carry the same query. Who sees what is the services' (docs/reports.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from cadenza.domain import policy
from cadenza.domain.enums import ExportRows, RepBasis, ReportBy
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import row_id_of
from cadenza.domain.policy import Resource
from cadenza.domain.report_period import parse_day, period
from cadenza.services.accounts.users import list_users
from cadenza.services.analytics import exports, reports
from cadenza.services.sequences.catalog import list_sequences
from cadenza.web.auth import Ctx
from cadenza.web.ui.charts import funnel, signals_chart
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

# The figures the page's table shows, in order, with their headings.
COLUMNS = (
    ("enrolled", "Enrolled"), ("active", "Active"), ("finished", "Finished"),
    ("sent", "Sent"), ("delivered", "Delivered"), ("opened", "Opened"),
    ("clicked", "Clicked"), ("replied", "Replied"), ("meetings_booked", "Meetings"),
    ("bounced", "Bounced"), ("unsubscribed", "Unsubscribed"), ("tasks_done", "Tasks done"),
    ("tasks_overdue", "Overdue"),
)  # fmt: skip
MAX_CHARTS = 12  # rows drawn as charts; the table and the CSV hold every row


def _id(text: str | None, field: str) -> int | None:
    if text is None or not text.strip():
        return None
    number = row_id_of(text.strip())
    if number is None:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{field} must be an id", {"field": field})
    return number


def _query(
    ctx, by: str | None, start, end, basis: str | None, rep, sequence
) -> reports.ReportQuery:
    try:
        grouping, whose = ReportBy(by or ReportBy.SEQUENCE), RepBasis(basis or RepBasis.ENROLLED_BY)
    except ValueError:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "unknown report or basis") from None
    chosen = period(parse_day(start, "start"), parse_day(end, "end"), today=ctx.clock.now().date())
    return reports.ReportQuery(grouping, chosen, whose, _id(rep, "rep"), _id(sequence, "sequence"))


Filters = dict[str, str | None]


def _filters(
    by: str = Query("sequence", max_length=20),
    start: str | None = Query(None, max_length=40),
    end: str | None = Query(None, max_length=40),
    basis: str = Query("enrolled_by", max_length=20),
    rep: str | None = Query(None, max_length=20),
    sequence: str | None = Query(None, max_length=20),
) -> Filters:
    return {"by": by, "start": start, "end": end, "basis": basis, "rep": rep, "sequence": sequence}


@router.get("/reports")
def reports_page(request: Request, user: PageUser, ctx: Ctx, f: Filters = Depends(_filters)):
    query = _query(ctx, **f)
    report = reports.team_report(ctx, query, actor_id=user.id)
    series = {s.key: s for s in reports.daily_signals(ctx, query, actor_id=user.id)}
    charts = [
        (
            row,
            funnel(
                [
                    ("Enrolled", row.current.enrolled),
                    ("Emailed", row.current.contacts_emailed),
                    ("Replied", row.current.replied),
                    ("Meeting", row.current.meetings_booked),
                ]
            ),
            signals_chart(series[row.key]) if row.key in series else None,
        )
        for row in report.rows[:MAX_CHARTS]
    ]
    sees_all = policy.sees_all(user, Resource.REPORT)
    reps = list_users(ctx) if sees_all else [user]
    link = "&".join(f"{k}={v}" for k, v in _link_filters(query).items() if v is not None)
    return render(
        request,
        "reports/page.html",
        report=report,
        query=query,
        charts=charts,
        columns=COLUMNS,
        reps=reps,
        sequences=list_sequences(ctx),
        outcomes=sorted({o for r in [*report.rows, report.total] for o in r.current.calls}),
        link=link,
        export_rows=list(ExportRows),
        groupings=list(ReportBy),
        bases=list(RepBasis),
    )


def _link_filters(query: reports.ReportQuery) -> dict[str, object]:
    return {
        "by": query.by, "start": query.period.start, "end": query.period.end,
        "basis": query.basis, "rep": query.rep_id, "sequence": query.sequence_id,
    }  # fmt: skip


def _csv(chunks, name: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/reports/csv")
def report_csv(user: PageUser, ctx: Ctx, f: Filters = Depends(_filters)):
    query = _query(ctx, **f)
    report = reports.team_report(ctx, query, actor_id=user.id)
    return _csv(
        exports.report_csv(report), f"report-{query.by}-{query.period.start}-{query.period.end}"
    )


@router.get("/reports/rows/{rows}")
def rows_csv(rows: ExportRows, user: PageUser, ctx: Ctx, f: Filters = Depends(_filters)):
    query = _query(ctx, **f)
    chunks = exports.export_rows(ctx, rows, query, actor_id=user.id)
    return _csv(chunks, f"{rows}-{query.period.start}-{query.period.end}")
