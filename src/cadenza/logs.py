"""Logging, set up in one place for every process (`cadenza serve`, `cadenza worker`).

Text lines for a terminal, or JSON lines (`CADENZA_LOG_FORMAT=json`) for a log
collector: one object per record with its time, level, logger and message, plus the
ids of what it is about. Those ids are context variables, bound where they are known —
the request id by the web middleware, the worker id by the worker's loop, the
enrollment, step run and message ids around a send — so that code deep below never has
to pass them along. A `logging.Filter` copies them onto each record, so the text format
can show them too.

Secrets never reach a record: settings hold them as SecretStr, the stores keep them
sealed, and nothing here reads request headers (tests/integration/test_json_logs.py
greps a whole run's logs for the test secrets).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# The ids a record may carry, in the order the JSON object lists them.
CONTEXT_FIELDS = (
    "request_id",
    "worker_id",
    "mailbox_id",
    "enrollment_id",
    "step_run_id",
    "message_id",
    "webhook_delivery_id",
)
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "cadenza_log_context", default=MappingProxyType({})
)
# Extra attributes a caller may pass with `extra=` that belong in the JSON object.
EXTRA_FIELDS = (*CONTEXT_FIELDS, "method", "route", "status", "duration_ms", "outcome")
_HANDLER_NAME = "cadenza"


@contextlib.contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Every record logged inside carries these ids (None values are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: Any) -> None:
    """Binds ids for the rest of the current context (a thread, a request's task)."""
    _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


def current() -> dict[str, Any]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Puts the bound ids on each record (a record's own `extra=` values win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, followed by the bound ids as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The stdlib's local time text, converted once a second rather than per record:
        the worker logs a line for every email it hands over, and converting its time
        was nearly half of formatting one (a py-spy profile, docs/benchmarks.md)."""
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"  # the stdlib's default_msec_format

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if hasattr(record, k)]
        return f"{line} [{' '.join(ids)}]" if ids else line


def _skip_unshown_fields() -> None:
    """Records stop looking up their caller's file and line, thread and process: neither
    format shows them, and the worker logs a record for every email it hands over. The
    logging HOWTO's "Optimization" section names these switches (`_srcfile` included)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(log_format: str = "text", level: str = "INFO", stream: Any = None) -> None:
    """Replaces the root logger's handler with ours; calling it again reconfigures.

    uvicorn's loggers are told to propagate here (serve passes `log_config=None`), so
    its own records come out in the same format.
    """
    _skip_unshown_fields()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
