"""Long-running processes run with their start's heap frozen (cadenza/runtime.py): the
worker command within `settled_heap`, `cadenza serve` and the API bench's server after
`settle_heap`."""

import gc
import os
import subprocess
import sys

from cadenza.runtime import YOUNG_GENERATION_THRESHOLD

CHECK = """
import gc
import cadenza.cli.worker  # the worker command's imports
from cadenza.runtime import settled_heap, YOUNG_GENERATION_THRESHOLD
before = (gc.get_freeze_count(), gc.get_threshold())
with settled_heap():
    within = (gc.get_freeze_count(), gc.get_threshold()[0])
after = (gc.get_freeze_count(), gc.get_threshold())
print(before[0], within[0], within[1], YOUNG_GENERATION_THRESHOLD, after[0], before == after)
"""

SETTLED = """
import gc
from cadenza.runtime import settle_heap
from cadenza.web.app import create_app
frozen_before = gc.get_freeze_count()
replaced = settle_heap()
print(frozen_before, gc.get_freeze_count(), gc.get_threshold()[0], replaced[0])
"""


def _run(code: str) -> list[str]:
    # In a process of its own: this one's collector is left as pytest configured it.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_the_start_is_frozen_and_young_objects_collected_less_often_until_the_end():
    frozen_before, frozen, threshold, wanted, frozen_after, restored = _run(CHECK)
    assert int(frozen_before) == 0
    assert int(frozen) > 10_000  # the imports' objects: modules, mappers, functions
    assert int(threshold) == int(wanted) > gc.get_threshold()[0]
    assert (int(frozen_after), restored) == (0, "True")  # an in-process run leaves no trace


def test_a_server_settles_its_heap_for_good_with_the_web_apps_objects_in_it():
    frozen_before, frozen, threshold, replaced = _run(SETTLED)
    assert int(frozen_before) == 0
    # the web app's modules (routes, pages, pydantic's validators) are far more objects
    # than the worker's alone
    assert int(frozen) > 50_000
    assert int(threshold) > int(replaced) == 700


SERVE = """
import gc, sys
import uvicorn
from cadenza.cli import app
# what `cadenza serve` has done to the collector by the time it starts serving
uvicorn.run = lambda *a, **k: print(gc.get_freeze_count(), gc.get_threshold()[0])
app(["serve", "--no-worker", "--inbox-interval", "0", "--port", "8999"], standalone_mode=False)
"""


def test_cadenza_serve_has_settled_its_heap_when_it_starts_serving(tmp_path):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "CADENZA_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "cadenza", "db", "upgrade"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", SERVE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, threshold = int(out[-2]), int(out[-1])
    assert frozen > 50_000  # the web app's objects among them
    assert threshold == YOUNG_GENERATION_THRESHOLD
