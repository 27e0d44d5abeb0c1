"""The worker process settles its heap before running (cli/worker.py, settle_heap)."""

import subprocess
import sys

CHECK = """
import gc
from cadenza.cli.worker import settle_heap, _YOUNG_GENERATION_THRESHOLD
before = gc.get_freeze_count()
settle_heap()
print(before, gc.get_freeze_count(), gc.get_threshold()[0], _YOUNG_GENERATION_THRESHOLD)
"""


def test_settling_freezes_what_start_built_and_collects_young_objects_less_often():
    # In a process of its own: freezing this test process's heap would keep its garbage.
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.split()
    before, frozen, threshold, wanted = map(int, out)
    assert before == 0
    assert frozen > 10_000  # the imports' objects: modules, mappers, functions
    assert threshold == wanted > 700
