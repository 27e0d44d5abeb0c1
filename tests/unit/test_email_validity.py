"""`is_valid_email`, the enroll path's check of a contact's stored address: the same
answer as `normalize_email` (the one validation), remembered for the next request."""

import pytest

from cadenza.domain.contact_fields import is_valid_email, normalize_email
from cadenza.domain.errors import CadenzaError

ADDRESSES = [
    "ann@corp.example",
    "Ann.Lee+news@Corp.Example",
    "  padded@corp.example ",
    "no-at-sign.example",
    "two@@corp.example",
    "dot.@corp.example",
    "ann@corp",
    "ann@-corp.example",
    "ünïcode@corp.example",
    "",
]


def normalizes(address: str) -> bool:
    try:
        normalize_email(address)
    except CadenzaError:
        return False
    return True


@pytest.mark.parametrize("address", ADDRESSES)
def test_is_valid_email_answers_as_the_validation_does(address):
    assert is_valid_email(address) is normalizes(address)
    assert is_valid_email(address) is normalizes(address)  # and again, from memory


def test_the_answers_are_remembered_and_bounded():
    is_valid_email.cache_clear()
    is_valid_email("ann@corp.example")
    is_valid_email("ann@corp.example")
    info = is_valid_email.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize == 4096
