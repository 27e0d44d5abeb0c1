"""Every operation of the API, fuzzed from its own OpenAPI document, in-process, as a member.

Generated requests must never cause a 5xx, and every answer — errors included — must
be one the document declares, in the shape it declares. Valid (positive) and invalid
(negative) requests are both generated: invalid input must be refused cleanly.

Schemathesis' pytest loader for fixtures (`schemathesis.pytest.from_fixture`) breaks on
pytest 9 (it reads `Function._nodeid`), and the app exists only inside the per-database
fixtures; so each operation gets a plain Hypothesis test here, built from
`APIOperation.as_strategy()`, and each (operation, generation mode) is its own test item
on each database: under pytest-xdist the ~190 items spread over the workers, where one
test per database held a worker for minutes. The app, its database and its users are
built once per database for the module (`fuzzed`), not per item: building them costs
more than fuzzing an operation. Derandomized: each operation draws from the same seed
every run, so a red build is a regression, not a new draw (schemathesis also steers by the
answers it got before, so which operations a worker ran first can still shift a case).
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cadenza.web.app import create_app
from tests.conftest import Api, World

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Loaded once: the document needs no database, and loading it costs more than fuzzing
# an operation. Requests go to the app of each test's own (per-database) fixture.
# Schemathesis gives up on the document after 10 s by default, which building it (all
# 300 routes' schemas) took on a machine running other suites: a minute, then.
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", create_app(None), timeout=60)
CASES = [
    (method.upper(), path, mode)
    for path, methods in SCHEMA.raw_schema["paths"].items()
    for method, spec in methods.items()
    # an operation without parameters or body has no invalid request to generate
    for mode in (
        [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        if spec.get("parameters") or spec.get("requestBody")
        else [GenerationMode.POSITIVE]
    )
]
FUZZ = settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz(operation, mode, client, headers) -> None:
    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers_within_schema(case):
        case.call_and_validate(session=client, headers=headers, checks=CHECKS)

    try:
        answers_within_schema()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
        # A path parameter that takes any string up to a length (a type's name): about one
        # draw in 460 is an invalid value that survives URL encoding, and whether it comes
        # up depends on what schemathesis learnt from the answers before. Nothing invalid
        # was sent, so there is nothing to check: said, not passed.
        pytest.skip(f"schemathesis generated no invalid request for {operation.label}")


@pytest.fixture(scope="module")
def fuzzed(module_ctx) -> Api:
    """The app, a world and the API users, built once per database for the module. What
    one operation's requests create stays for the next ones a worker runs, as it did when
    one test fuzzed them all."""
    return Api(module_ctx, World(module_ctx))


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        # Invalid requests are refused by the request's validation, before any query:
        # the same refusal on both databases, so they are fuzzed on SQLite only (tests/
        # conftest.py, pytest_collection_modifyitems); valid ones reach the store.
        pytest.param(
            method,
            path,
            mode,
            marks=[pytest.mark.backend_independent] if mode is GenerationMode.NEGATIVE else [],
        )
        for method, path, mode in CASES
    ],
    ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES],
)
def test_operation_answers_within_its_schema(fuzzed, method, path, mode):
    # One in-process client for the item's requests (by default schemathesis starts one per call).
    with asgi.get_client(fuzzed.client.app) as client:
        fuzz(SCHEMA[path][method], mode, client, fuzzed.headers("member"))


def test_every_operation_is_fuzzed():
    """The cases come from the document itself: a new operation is fuzzed without a new line."""
    operations = {
        (method.upper(), path)
        for path, methods in SCHEMA.raw_schema["paths"].items()
        for method in methods
    }
    assert len(operations) > 90  # the document really lists the API
    assert {(method, path) for method, path, _ in CASES} == operations
