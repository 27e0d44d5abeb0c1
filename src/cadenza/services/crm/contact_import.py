"""CSV import of contacts: good rows are imported, each bad row is reported with its line.

Re-importing a file updates the contacts it names (matched by email) instead of
duplicating them, so an import that was interrupted can simply be run again. A row
with an erased contact's address is skipped with the reason `suppressed`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from cadenza.domain.contact_fields import clean_contact_input
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.crm import suppressions
from cadenza.services.crm.contacts import contacts_by_email, upsert_contact

BATCH_SIZE = 500
DELIMITERS = (",", ";", "\t")
# Header spellings seen in CRM exports, folded (lower case, no spaces, "_" or "-").
HEADER_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "e-mail": "email",
    "firstname": "firstname",
    "givenname": "firstname",
    "lastname": "lastname",
    "surname": "lastname",
    "familyname": "lastname",
    "company": "company",
    "companyname": "company",
    "organization": "company",
    "jobtitle": "jobtitle",
    "title": "jobtitle",
    "phone": "phone",
    "phonenumber": "phone",
    "timezone": "timezone",
    "tz": "timezone",
}


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


def _fold(header: str) -> str:
    return "".join(ch for ch in header.strip().lower() if ch not in " _-")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CadenzaError(
            ErrorCode.BAD_ENCODING,
            f"the file is not UTF-8 (byte 0x{data[exc.start]:02X} on line {line}): "
            "save it as 'CSV UTF-8' and import it again",
            {"line": line},
        ) from None


def _delimiter(header_line: str) -> str:
    return max(DELIMITERS, key=header_line.count)


def _columns(header: list[str]) -> list[str]:
    columns = [HEADER_ALIASES.get(_fold(h), h.strip()) for h in header]
    if "email" not in columns:
        raise CadenzaError(
            ErrorCode.MISSING_HEADER,
            "the first line must be a header with an 'email' column "
            f"(found: {', '.join(repr(h) for h in header) or 'nothing'}); "
            "columns are separated by commas, semicolons or tabs",
            {"found": header},
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise CadenzaError(
            ErrorCode.MISSING_HEADER,
            f"the header names {', '.join(duplicates)} more than once",
            {"duplicates": duplicates},
        )
    if any(not c for c in columns):
        raise CadenzaError(ErrorCode.MISSING_HEADER, "the header has an empty column name")
    return columns


def read_file(ctx: Context, path: Path) -> bytes:
    size = path.stat().st_size
    limit = ctx.settings.import_max_bytes
    if size > limit:
        raise CadenzaError(
            ErrorCode.FILE_TOO_LARGE,
            f"the file is {size / 1e6:.1f} MB; imports are limited to {limit / 1e6:.0f} MB "
            "(split it, or raise CADENZA_IMPORT_MAX_BYTES)",
            {"size": size, "limit": limit},
        )
    return path.read_bytes()


def parse_csv(
    ctx: Context, data: bytes, columns_of: Callable[[list[str]], list[str]]
) -> list[tuple[int, dict | RowError]]:
    """The file's rows as {column: cell}, or a RowError for a malformed line. Problems
    with the whole file (size, encoding, header, quoting) raise; `columns_of` maps and
    checks the header. Shared by every CSV import (contacts, records)."""
    return list(_rows(ctx, data, columns_of))


@dataclass(frozen=True)
class CsvRows:
    count: int  # rows, blank lines left out
    rows: Iterator[tuple[int, dict | RowError]]


def stream_csv(ctx: Context, data: bytes, columns_of: Callable[[list[str]], list[str]]) -> CsvRows:
    """What parse_csv gives, without holding every row at once: a first pass over the
    file checks all of it (a problem with the whole file raises before anything is
    written) and counts its rows, keeping none; the rows then come one at a time from a
    second pass. Memory follows a batch, not the file's row count."""
    count = sum(1 for _ in _rows(ctx, data, columns_of))
    return CsvRows(count, _rows(ctx, data, columns_of))


def _rows(
    ctx: Context, data: bytes, columns_of: Callable[[list[str]], list[str]]
) -> Iterator[tuple[int, dict | RowError]]:
    if len(data) > ctx.settings.import_max_bytes:
        raise CadenzaError(ErrorCode.FILE_TOO_LARGE, "the file is larger than the import limit")
    text = _decode(data)
    if b"\x00" in data:
        raise CadenzaError(ErrorCode.MALFORMED_CSV, "the file contains NUL bytes: is it a CSV?")
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise CadenzaError(
            ErrorCode.MISSING_HEADER, "the file is empty or starts with a blank line"
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        columns = columns_of(next(reader))
        yield from _parse_rows(reader, columns)
    except csv.Error as exc:
        raise CadenzaError(
            ErrorCode.MALFORMED_CSV, f"line {reader.line_num}: {exc}", {"line": reader.line_num}
        ) from None


def import_contacts(
    ctx: Context,
    data: bytes,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Validates the whole file's shape first, then imports row batches of BATCH_SIZE,
    reading each batch's rows as it comes (stream_csv): a 100,000-row file never sits
    in memory as 100,000 parsed rows."""
    parsed = stream_csv(ctx, data, _columns)
    report = ImportReport(rows=parsed.count)
    done = 0
    while batch_rows := list(islice(parsed.rows, BATCH_SIZE)):
        _import_batch(ctx, batch_rows, report)
        done += len(batch_rows)
        if on_progress:
            on_progress(done, report.rows)
    report.errors.sort(key=lambda e: e.line)
    return report


def _import_batch(
    ctx: Context, rows: list[tuple[int, dict | RowError]], report: ImportReport
) -> None:
    """One batch in one transaction: its bad rows reported by line, the good ones
    created or updated (their existing contacts read in one query)."""
    good: list[tuple[int, dict, dict]] = []
    for line, values in rows:
        if isinstance(values, RowError):
            report.errors.append(values)
            continue
        try:
            row_columns, properties = clean_contact_input(values)
        except CadenzaError as exc:
            report.errors.append(RowError(line, str(exc.code), exc.message))
            continue
        if not row_columns.get("email"):
            report.errors.append(RowError(line, str(ErrorCode.MISSING_EMAIL), "no email address"))
            continue
        good.append((line, row_columns, properties))
    if not good:
        return
    with ctx.db.transaction() as session:
        addresses = [row_columns["email"] for _, row_columns, _ in good]
        suppressed = suppressions.suppressed_among(ctx, session, addresses)
        known = contacts_by_email(session, addresses)
        for line, row_columns, properties in good:
            try:
                created = upsert_contact(
                    session, ctx, row_columns, properties, suppressed=suppressed, known=known
                )
            except CadenzaError as exc:  # `suppressed`: refused before any write
                report.errors.append(RowError(line, str(exc.code), exc.message))
                continue
            if created:
                report.created += 1
            else:
                report.updated += 1


# Per request (one file): larger imports are split, so one upload cannot hold a worker
# and the database for minutes, nor a header of thousands of columns become properties.
MAX_CSV_COLUMNS = 200
MAX_CSV_ROWS = 100_000


def _parse_rows(reader, columns: list[str]) -> Iterator[tuple[int, dict | RowError]]:
    if len(columns) > MAX_CSV_COLUMNS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a CSV has at most {MAX_CSV_COLUMNS} columns ({len(columns)} found)",
            {"limit": MAX_CSV_COLUMNS},
        )
    count = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if count >= MAX_CSV_ROWS:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"a CSV has at most {MAX_CSV_ROWS} rows per import: split the file",
                {"limit": MAX_CSV_ROWS},
            )
        count += 1
        if len(row) != len(columns):
            yield (
                line,
                RowError(
                    line,
                    str(ErrorCode.MALFORMED_CSV),
                    f"expected {len(columns)} fields, found {len(row)}",
                ),
            )
            continue
        yield line, dict(zip(columns, row, strict=True))
