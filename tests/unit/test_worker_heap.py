"""The worker command runs with its start's heap frozen (cli/worker.py, settled_heap)."""

import gc
import subprocess
import sys

CHECK = """
import gc
from cadenza.cli.worker import settled_heap, _YOUNG_GENERATION_THRESHOLD
before = (gc.get_freeze_count(), gc.get_threshold())
with settled_heap():
    within = (gc.get_freeze_count(), gc.get_threshold()[0])
after = (gc.get_freeze_count(), gc.get_threshold())
print(before[0], within[0], within[1], _YOUNG_GENERATION_THRESHOLD, after[0], before == after)
"""


def test_the_start_is_frozen_and_young_objects_collected_less_often_until_the_end():
    # In a process of its own: this one's collector is left as pytest configured it.
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.split()
    frozen_before, frozen, threshold, wanted, frozen_after, restored = out
    assert int(frozen_before) == 0
    assert int(frozen) > 10_000  # the imports' objects: modules, mappers, functions
    assert int(threshold) == int(wanted) > gc.get_threshold()[0]
    assert (int(frozen_after), restored) == (0, "True")  # an in-process run leaves no trace
