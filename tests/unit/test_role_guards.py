"""The one role check behind both sets of guards (`ApiWriter`/`ApiAdmin` over a token,
`PageWriter`/`PageAdmin` over a session cookie): domain/policy.py's `check_role`."""

import inspect
from dataclasses import dataclass

import pytest

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import ROLE_CHECKS, Who, check_role
from cadenza.web import auth
from cadenza.web.ui import session


@dataclass
class Person:
    id: int
    role: str


@pytest.mark.parametrize(
    ("role", "who", "allowed"),
    [
        ("admin", Who.WRITER, True),
        ("member", Who.WRITER, True),
        ("viewer", Who.WRITER, False),
        ("admin", Who.ADMIN, True),
        ("member", Who.ADMIN, False),
        ("viewer", Who.ADMIN, False),
    ],
)
def test_check_role_lets_through_exactly_the_roles_it_names(role, who, allowed):
    if allowed:
        check_role(Person(1, role), who)
        return
    with pytest.raises(CadenzaError) as refused:
        check_role(Person(1, role), who)
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    expected = "only admins can do this" if who is Who.ADMIN else "viewers can read but"
    assert refused.value.message.startswith(expected)


def test_only_the_writer_and_admin_guards_exist():
    assert set(ROLE_CHECKS) == {Who.WRITER, Who.ADMIN}


def test_api_and_page_guards_are_made_by_the_same_factory():
    """Both sets come from `role_guards`, over their own way of finding the user, so they
    cannot drift apart: the only difference is the dependency that finds the user."""
    for guard, finder in (
        (auth.api_writer, auth.current_user),
        (auth.api_admin, auth.current_user),
        (session.ui_writer, session.signed_in_user),
        (session.ui_admin, session.signed_in_user),
    ):
        assert guard.__qualname__.startswith("role_guards.")
        assert inspect.signature(guard).parameters["user"].default.dependency is finder
