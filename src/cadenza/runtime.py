"""What a long-running Cadenza process does once it has started, before it works.

The objects made while starting — every module, class, SQLAlchemy mapper and compiled
statement, FastAPI's routes and pydantic's validators, hundreds of thousands of them —
live as long as the process. Python's cyclic collector would walk all of them at each
of its full collections, and it collects its young generation every 700 allocations;
the worker's and the web app's own garbage is mostly freed by reference counting. Both
cost CPU for nothing: about a twentieth of a worker's CPU an email (bench/engine.py),
and a sixth of a web process's for a 50-contact enroll preview under load (bench/api.py,
docs/benchmarks.md). Settled, the startup objects are out of the collector's reach
(`gc.freeze`) and young objects are collected in larger batches; cycles are still
collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Container allocations between two young-generation collections (Python's default: 700).
YOUNG_GENERATION_THRESHOLD = 5_000


def settle_heap() -> tuple[int, ...]:
    """Collects what starting up left behind, freezes every survivor and collects young
    objects less often; returns the thresholds it replaced. Call once the app or the
    worker is built, before the first request or claim."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *threshold[1:])
    return threshold


@contextmanager
def settled_heap() -> Iterator[None]:
    """`settle_heap` for the time within, undone on leaving: for commands that tests run
    in-process among other work, whose later garbage must be collected as before."""
    threshold = settle_heap()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
