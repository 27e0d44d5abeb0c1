"""Signed link tokens: round trips, and everything else refused."""

import pytest

from cadenza.domain.link_tokens import (
    InvalidToken,
    Purpose,
    TokenRef,
    new_tracking_id,
    sign,
    verify,
)

SECRET = b"k" * 32


def test_tokens_round_trip_and_stay_short():
    tid = new_tracking_id()
    unsubscribe = sign(SECRET, Purpose.UNSUBSCRIBE, tid)
    click = sign(SECRET, Purpose.CLICK, tid, 7)
    assert verify(SECRET, Purpose.UNSUBSCRIBE, unsubscribe) == TokenRef(tid)
    assert verify(SECRET, Purpose.CLICK, click) == TokenRef(tid, 7)
    assert len(unsubscribe) == 39 and len(click) <= 44
    assert len({new_tracking_id() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: ("A" if t[0] != "A" else "B") + t[1:],  # message key changed
        lambda t: t.split(".")[0],  # signature dropped
        lambda t: t + ".",
        lambda t: "",
        lambda t: t.replace(".", ".0.", 1),  # made into a click token
        lambda t: t.upper(),
    ],
)
def test_modified_tokens_are_refused(mangle):
    token = sign(SECRET, Purpose.UNSUBSCRIBE, new_tracking_id())
    with pytest.raises(InvalidToken):
        verify(SECRET, Purpose.UNSUBSCRIBE, mangle(token))


def test_a_token_is_valid_only_for_its_purpose_and_secret():
    tid = new_tracking_id()
    opened = sign(SECRET, Purpose.OPEN, tid)
    with pytest.raises(InvalidToken):
        verify(SECRET, Purpose.UNSUBSCRIBE, opened)
    with pytest.raises(InvalidToken):
        verify(b"other" * 8, Purpose.OPEN, opened)
    forged = sign(b"guess" * 8, Purpose.UNSUBSCRIBE, tid)
    with pytest.raises(InvalidToken):
        verify(SECRET, Purpose.UNSUBSCRIBE, forged)


def test_click_index_is_signed():
    tid = new_tracking_id()
    token = sign(SECRET, Purpose.CLICK, tid, 0)
    key, _, sig = token.split(".")
    with pytest.raises(InvalidToken):
        verify(SECRET, Purpose.CLICK, f"{key}.1.{sig}")
    with pytest.raises(ValueError):
        sign(SECRET, Purpose.OPEN, tid, 0)
    with pytest.raises(ValueError):
        sign(SECRET, Purpose.CLICK, tid)
