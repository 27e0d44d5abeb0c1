"""Folder names a user may type (domain/folders.py)."""

import pytest

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.folders import MAX_FOLDER_LENGTH, folder_name


def test_a_folder_name_is_trimmed_and_blank_means_none():
    assert folder_name("  Q3   outbound ") == "Q3 outbound"
    assert folder_name("   ") is None
    assert folder_name(None) is None
    assert folder_name("Ventes été") == "Ventes été"


@pytest.mark.parametrize(
    "bad", ["a/b", "back\\slash", "<b>", 'quote"', "bell\x07", "zero\u200bwidth", 12,
            "x" * (MAX_FOLDER_LENGTH + 1)],
)  # fmt: skip
def test_a_folder_name_refuses_paths_markup_control_characters_and_length(bad):
    with pytest.raises(CadenzaError) as caught:
        folder_name(bad)
    assert caught.value.code == ErrorCode.VALIDATION_ERROR
