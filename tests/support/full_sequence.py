"""A sequence with every field set away from its default, for round-trip tests.

The field lists come from the API's own models, so a setting or step field added
later is covered (and fails `assert_every_field_set` until it is given a value here).
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from cadenza.web.routes.sequences import SettingsIn, StepIn

FULL_SETTINGS = {
    "follow_up_days": "business_days",
    "holiday_country": "DE",
    "send_window": {"start": "08:30", "end": "17:15"},
    "thread_follow_ups": False,
    "unenroll_on_reply": "company",
    "unenroll_on_meeting": False,
    "task_reminders": True,
    "track_opens": True,
    "track_clicks": True,
    "auto_reply_pause_days": 14,
    "unenroll_on_outcomes": ["meeting_booked", "demo_done"],
    "enrollment_rules": {
        "exclusivity": "exclusive",
        "reenrollment": "once",
        "min_days_since_emailed": 10,
    },
}
FULL_STEPS = [
    {"type": "email", "delay_days": 0, "delay_hours": 0,
     "subject": "Hello {{ contact.firstname | default('there') }}",
     "body": "<p>Hi {{ contact.firstname | default('there') }}, a first note.</p>",
     "variants": [{"label": "A"}, {"label": "B", "subject": "Quick question",
                                   "body": "<p>A shorter note.</p>"}],
     "winner_after": 25},
    {"type": "manual_email", "delay_days": 3, "delay_hours": 5, "thread_with_step": 1,
     "subject": "Following up", "body": "<p>Any thoughts on my note?</p>",
     "task_priority": "high"},
    {"type": "task", "delay_days": 2, "delay_hours": 1, "task_type": "linkedin",
     "task_title": "Connect with {{ contact.firstname }}", "task_notes": "Mention the note",
     "task_priority": "medium", "continue_without_completing": True},
]  # fmt: skip
FULL_SEQUENCE = {"name": "Every field", "settings": FULL_SETTINGS, "steps": FULL_STEPS}
# Step fields naming another row, which a constant cannot hold: a template used by
# reference round-trips in tests/ui/test_templates_http.py (the editor keeps it on save).
REFERENCES = {"template_id"}


def assert_every_field_set(representation: dict[str, Any]) -> None:
    """Every setting differs from its default, and every step field is set on some step."""
    for name, field in SettingsIn.model_fields.items():
        value = representation["settings"][name]
        assert value not in (None, field.default), f"setting {name} is left at its default"
    for name, field in StepIn.model_fields.items():
        if name in REFERENCES:
            continue
        values = [step[name] for step in representation["steps"]]
        assert any(v not in (None, field.default, "none") for v in values), (
            f"step field {name} is not set on any step"
        )


class _FormReader(HTMLParser):
    """What a browser would submit from one form: inputs, checked boxes, selects, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._option: dict[str, str | None] | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name") and "disabled" not in a:
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            if a.get("type") in ("submit", "button"):
                return
            value = a.get("value")
            self.fields.append((a["name"], "on" if value is None and a.get("type") == "checkbox"
                                else value or ""))  # fmt: skip
        elif tag == "select" and a.get("name"):
            self._select, self._select_first, self._select_chosen = a["name"], None, False
        elif tag == "option" and self._select:
            self._option = {"value": a.get("value"), "selected": "selected" in a}
            self._text = ""
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], ""

    def handle_data(self, data):
        if self._option is not None or self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "option" and self._option is not None:
            value = self._option["value"]
            value = self._text.strip() if value is None else value
            if self._select_first is None:
                self._select_first = value
            if self._option["selected"] and not self._select_chosen:
                self.fields.append((self._select, value))
                self._select_chosen = True
            self._option = None
        elif tag == "select" and self._select:
            if not self._select_chosen and self._select_first is not None:
                self.fields.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.fields.append((self._textarea, text))
            self._textarea = None


def form_fields(page_html: str, form_id: str) -> list[tuple[str, str]]:
    """The (name, value) pairs the form `form_id` on the page submits unchanged."""
    reader = _FormReader(form_id)
    reader.feed(page_html)
    assert reader.fields, f"no form #{form_id} on the page"
    return reader.fields


def post_form(client, url: str, fields: list[tuple[str, str]]):
    """Posts repeated/ordered fields as a browser does (httpx's `data=` wants a dict)."""
    return client.post(
        url,
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def without_volatile(representation: dict[str, Any]) -> dict[str, Any]:
    """The API representation minus the save time, which a save is meant to change."""
    return {k: v for k, v in representation.items() if k != "updated_at"}
