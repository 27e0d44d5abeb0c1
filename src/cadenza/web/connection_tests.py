"""The one ConnectionTests brake of an app, shared by the API and the web app's page."""

from __future__ import annotations

import threading

from fastapi import Request

from cadenza.engine.transports.check import ConnectionTests

_CREATING = threading.Lock()


def connection_tests(request: Request) -> ConnectionTests:
    state = request.app.state
    with _CREATING:
        if getattr(state, "connection_tests", None) is None:
            state.connection_tests = ConnectionTests(state.ctx.clock)
        return state.connection_tests
