"""A row export streams in bounded memory: exporting ten times the rows must not take
ten times the memory. Measured with tracemalloc's peak (allocations, not time), on a
generated history of 1,000 and then 10,000 more emails, read in pages of 100 rows (the
export's batch size made small, so ten and a hundred pages are cheap to write).

SQLite only: the batching (keyset pages of exports.BATCH rows, each written out before
the next is read) is the same code on PostgreSQL, whose driver also holds one page."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest

from cadenza.domain.enums import ExportRows, ReportBy
from cadenza.domain.report_period import Period
from cadenza.services.analytics import exports
from cadenza.services.analytics.reports import ReportQuery
from tests.support.report_history import seed_history, team


def _export_peak(ctx, rows: ExportRows, query: ReportQuery) -> tuple[int, int]:
    """(lines, peak bytes) of one full export, consumed as a response would be."""
    lines = 0
    tracemalloc.start()
    try:
        for chunk in exports.export_rows(ctx, rows, query):
            lines += chunk.count("\r\n")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, peak


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_ten_times_the_rows_in_about_the_same_memory(ctx, database, monkeypatch):
    monkeypatch.setattr(exports, "BATCH", 100)
    now = ctx.clock.now()
    history = team(ctx, reps=2, sequences=2)
    small = Period((now - timedelta(days=9)).date(), (now - timedelta(days=5)).date())
    large = Period((now - timedelta(days=4)).date(), now.date())
    seed_history(ctx, history, enrollments=100, messages=1_000,
                 start=small.since, end=small.until - timedelta(hours=1))  # fmt: skip
    seed_history(ctx, history, enrollments=1_000, messages=10_000,
                 start=large.since, end=large.until - timedelta(hours=1))  # fmt: skip
    few, few_peak = _export_peak(ctx, ExportRows.MESSAGES, ReportQuery(ReportBy.SEQUENCE, small))
    many, many_peak = _export_peak(ctx, ExportRows.MESSAGES, ReportQuery(ReportBy.SEQUENCE, large))
    assert (few, many) == (1_001, 10_001)  # a header and every row
    assert many_peak < 1.5 * few_peak, (few_peak, many_peak)
