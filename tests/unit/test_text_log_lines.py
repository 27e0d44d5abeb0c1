"""The text log line's time: converted once a second (logs.TextFormatter), and still the
stdlib's text for every record, whatever order records of several seconds come in."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from cadenza import logs

INSTANTS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)


def record_at(created: float) -> logging.LogRecord:
    record = logging.LogRecord("cadenza.test", logging.INFO, "", 0, "sent", None, None)
    record.created, record.msecs = created, int((created - int(created)) * 1000)
    return record


@given(st.lists(INSTANTS, min_size=1, max_size=8))
def test_each_line_carries_the_stdlib_time_of_its_own_record(instants):
    ours, stdlib = logs.TextFormatter(), logging.Formatter()
    for created in [*instants, *reversed(instants)]:
        record = record_at(created)
        assert ours.formatTime(record) == stdlib.formatTime(record)


def test_a_line_names_its_time_level_logger_message_and_ids():
    record = record_at(1_765_000_000.25)
    record.mailbox_id = 7
    line = logs.TextFormatter().format(record)
    assert line == f"{logging.Formatter().formatTime(record)} INFO cadenza.test sent [mailbox_id=7]"
