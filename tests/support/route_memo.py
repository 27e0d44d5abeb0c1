"""One FastAPI route build per process, not per app.

FastAPI (0.165) builds an included router's routes for an app at that app's first
request: for each route, its dependencies' signatures and a pydantic adapter per
parameter, about 0.3-0.6 s for Cadenza's 300 routes. `cadenza serve` builds one app per
process and pays it once; the tests build an app per test (each test has its own
database, so its own context) and paid it in every test that makes a request: half the
time of the API and web-app tests.

The build depends only on the route and how it was included (prefix, tags, schema
flag, body limit), which are the same in every app Cadenza makes, and on the app's
dependency overrides, which Cadenza never uses (asserted when a route is built). So
each built route is kept, by route and inclusion, and handed to the next app that
includes it. Requests
still go through FastAPI's own routing, validation and dependencies: nothing of the
app's behaviour is replaced, only a repeated construction.
"""

from __future__ import annotations

from typing import Any

from fastapi import routing

_EffectiveRouteContext = routing._EffectiveRouteContext
_build = _EffectiveRouteContext.from_api_route.__func__
# (route, inclusion) -> the route as built; the route is kept alive with it so that its
# id is never reused by another object
_built: dict[tuple, tuple[Any, Any]] = {}


def _value(setting: Any) -> Any:
    """What a setting holds: FastAPI wraps defaults in a `DefaultPlaceholder`."""
    return getattr(setting, "value", setting)


def _inclusion(context: Any) -> tuple:
    """How a router was included, by value (never by the identity of a short-lived
    object, whose id a later one may reuse)."""
    return (
        context.prefix,
        tuple(context.tags),
        tuple(dependency.dependency for dependency in context.dependencies),
        context.include_in_schema,
        context.deprecated,
        context.max_body_size,
        _value(context.default_response_class),
        _value(context.generate_unique_id_function),
        repr(context.responses),
    )


def _from_api_route(cls, *, original_route, include_context, **kwargs):
    provider = include_context.dependency_overrides_provider
    assert not getattr(provider, "dependency_overrides", None), (
        "a test overrides dependencies: the built routes cannot be shared (tests/support/"
        "route_memo.py)"
    )
    if kwargs:  # a call this memo does not know: build as FastAPI would
        return _build(cls, original_route=original_route, include_context=include_context, **kwargs)
    key = (id(original_route), _inclusion(include_context))
    kept = _built.get(key)
    if kept is None:
        built = _build(cls, original_route=original_route, include_context=include_context)
        kept = _built[key] = (original_route, built)
    return kept[1]


def install() -> None:
    """Called once by tests/conftest.py, before any app is made."""
    _EffectiveRouteContext.from_api_route = classmethod(_from_api_route)
