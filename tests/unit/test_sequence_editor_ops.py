"""The editor's step operations: moving or deleting steps keeps threads pointing at the
same email, or drops a thread whose email is gone (the validator then asks for a subject)."""

from cadenza.web.ui.sequence_editor import apply_op

STEPS = [
    {"type": "email", "subject": "A"},
    {"type": "task", "task_title": "Call"},
    {"type": "email", "thread_with_step": 1},
]


def test_moving_a_step_renumbers_threads():
    moved = apply_op(STEPS, "down:1")
    assert [s.get("subject") or s.get("task_title") for s in moved[:2]] == ["Call", "A"]
    assert moved[2]["thread_with_step"] == 2


def test_deleting_the_threaded_email_drops_the_thread():
    assert apply_op(STEPS, "delete:1")[1]["thread_with_step"] is None


def test_adding_and_out_of_range_operations():
    added = apply_op(STEPS, "add:task")
    assert len(added) == 4 and added[3]["type"] == "task" and added[3]["delay_days"] == 2
    for op in ("up:1", "down:3", "delete:9", "up:x", "add:fax", "nonsense"):
        assert apply_op(STEPS, op) == STEPS
    assert STEPS[2]["thread_with_step"] == 1  # never changed in place
