"""Ids and whole numbers read from the text of a form or a link (domain/ids.py): what
`str.isdigit` takes but `int` refuses is no number, never an error."""

from __future__ import annotations

import sys

import pytest

from cadenza.domain.ids import MAX_ID, is_row_id, row_id_of, whole_number


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", 0), ("7", 7), ("007", 7), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), MAX_ID + 1)],
)
def test_ascii_digits_are_their_number(text, number):
    assert whole_number(text) == number


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "-1", "+1", "1.0", "1e3", "0x1", "²", "٣", "１", "1_000",
     "9" * (sys.get_int_max_str_digits() + 1)],
)  # fmt: skip
def test_anything_else_is_no_number(text):
    assert whole_number(text) is None
    assert row_id_of(text) is None


@pytest.mark.parametrize(
    ("text", "row_id"),
    [("1", 1), (str(MAX_ID), MAX_ID), ("0", None), (str(MAX_ID + 1), None), ("9" * 40, None)],
)
def test_a_row_id_is_a_whole_number_a_row_can_have(text, row_id):
    assert row_id_of(text) == row_id
    assert (row_id is not None) == is_row_id(whole_number(text))
