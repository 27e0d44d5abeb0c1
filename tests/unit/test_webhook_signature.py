"""The webhook signature's freshness window (domain/webhooks.verify), at its edges.

A receiver refuses a signature older or newer than the tolerance: a captured request
replayed later is rejected even though its secret and body are right.
"""

from __future__ import annotations

import pytest

from cadenza.domain.webhooks import sign, verify

SECRET = "whsec_test"
BODY = b'{"type": "paused"}'
SIGNED_AT = 1_772_442_000


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (86_400, False)],
)
def test_a_signature_is_accepted_only_within_the_tolerance(skew, accepted):
    header = sign(SECRET, SIGNED_AT, BODY)
    assert verify(SECRET, header, BODY, SIGNED_AT + skew) is accepted


def test_the_tolerance_can_be_narrowed_by_the_receiver():
    header = sign(SECRET, SIGNED_AT, BODY)
    assert verify(SECRET, header, BODY, SIGNED_AT + 60, tolerance=60)
    assert not verify(SECRET, header, BODY, SIGNED_AT + 61, tolerance=60)


@pytest.mark.parametrize(
    "header",
    ["", "t=abc,v1=00", "v1=00", f"t={SIGNED_AT}", f"t={SIGNED_AT},v1=", "garbage"],
)
def test_malformed_signature_headers_are_refused_not_raised(header):
    assert verify(SECRET, header, BODY, SIGNED_AT) is False


def test_a_signature_with_a_moved_timestamp_is_refused():
    forged = sign(SECRET, SIGNED_AT, BODY).replace(f"t={SIGNED_AT}", f"t={SIGNED_AT + 1}")
    assert not verify(SECRET, forged, BODY, SIGNED_AT)
