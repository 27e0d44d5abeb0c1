"""Why a link token is refused, and why a token cannot be made: the reason is kept in
the error (for logs and debugging), though callers answer every refusal alike."""

from __future__ import annotations

import pytest

from cadenza.domain.link_tokens import InvalidToken, Purpose, new_tracking_id, sign, verify

SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("purpose", "token", "reason"),
    [
        (Purpose.OPEN, "not-a-token", "^malformed token$"),
        (Purpose.CLICK, "open", "^token of another kind$"),  # an open token used as a click
        (Purpose.OPEN, "forged", "^bad signature$"),
    ],
)
def test_each_refusal_says_why(purpose, token, reason):
    tid = new_tracking_id()
    made = {
        "not-a-token": "x",
        "open": sign(SECRET, Purpose.OPEN, tid),
        "forged": sign(b"guess" * 8, Purpose.OPEN, tid),
    }[token]
    with pytest.raises(InvalidToken, match=reason):
        verify(SECRET, purpose, made)


@pytest.mark.parametrize(("purpose", "index"), [(Purpose.OPEN, 0), (Purpose.CLICK, None)])
def test_a_link_index_goes_with_click_tokens_only(purpose, index):
    with pytest.raises(ValueError, match=r"^a link index goes with click tokens, and only with"):
        sign(SECRET, purpose, new_tracking_id(), index)
