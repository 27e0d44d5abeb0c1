"""Reading the form fields several pages share."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData


class FormError(Exception):
    """A value the service never gets to see, shown next to its field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def settings_from_form(form: FormData) -> dict[str, Any]:
    """Follow-up settings (enroll dialog, sequence editor), validated by the domain later."""
    start, end = form.get("window_start", ""), form.get("window_end", "")
    if bool(start) != bool(end):
        raise FormError("settings", "give both the start and the end of the send window")
    return {
        "follow_up_days": form.get("follow_up_days", "every_day"),
        "holiday_country": str(form.get("holiday_country", "")).strip().upper() or None,
        "send_window": {"start": start, "end": end} if start else None,
        "thread_follow_ups": form.get("thread_follow_ups") == "on",
        "task_reminders": form.get("task_reminders") == "on",
    }
