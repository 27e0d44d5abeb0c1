"""Every operation of the API, fuzzed from its own OpenAPI document, in-process, as a member.

Generated requests must never cause a 5xx, and every answer — errors included — must
be one the document declares, in the shape it declares. Valid (positive) and invalid
(negative) requests are both generated: invalid input must be refused cleanly.

Schemathesis' pytest loader for fixtures (`schemathesis.pytest.from_fixture`) breaks on
pytest 9 (it reads `Function._nodeid`), and the app exists only inside the per-database
fixtures; so each operation gets a plain Hypothesis test here, built from
`APIOperation.as_strategy()`. All operations share one test per database: the fixtures
cost more than fuzzing an operation, and one report then lists every failing operation.
Derandomized: the same cases every run, so a red build is a regression, not a new draw.
"""

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cadenza.web.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Loaded once: the document needs no database, and loading it costs more than fuzzing
# an operation. Requests go to the app of each test's own (per-database) fixture.
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", create_app(None))
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

    answers_within_schema()


def test_every_operation_answers_within_its_schema(api):
    headers = api.headers("member")
    failures = []
    # One in-process client for every request (by default schemathesis starts one per call).
    with asgi.get_client(api.client.app) as client:
        for method, path, mode in CASES:
            try:
                fuzz(SCHEMA[path][method], mode, client, headers)
            except (FailureGroup, Exception) as exc:  # failed checks, or the app's own error
                notes = "\n".join(getattr(exc, "__notes__", []))
                failures.append(f"{method} {path} ({mode}): {type(exc).__name__}\n{exc}\n{notes}")
    assert not failures, f"{len(failures)} failing operations:\n\n" + "\n\n".join(failures)
