"""The one ConnectionTests brake of an app, shared by the API and the web app's page.

Here the service meets the engine: the web layer may import both, so it is what hands
the service the transport factory (services never import the engine themselves).
"""

from __future__ import annotations

import threading

from fastapi import Request

from cadenza.engine.inbox import check_login
from cadenza.engine.transports.factory import transport_for
from cadenza.services.accounts.connection_tests import ConnectionTests

_CREATING = threading.Lock()


def connection_tests(request: Request) -> ConnectionTests:
    state = request.app.state
    with _CREATING:
        if getattr(state, "connection_tests", None) is None:
            state.connection_tests = ConnectionTests(state.ctx.clock, transport_for, check_login)
        return state.connection_tests
