"""Saving a sequence unchanged in the web editor keeps every field the API set (issue 11
item 1), over HTTP on SQLite and PostgreSQL; the browser test does the same in Chromium."""

from __future__ import annotations

from tests.support.full_sequence import (
    FULL_SEQUENCE,
    FULL_STEPS,
    assert_every_field_set,
    form_fields,
    post_form,
    without_volatile,
)


def test_saving_unchanged_in_the_editor_keeps_every_field(api, rep):
    created = api.post("/sequences", json=FULL_SEQUENCE)
    assert created.status_code == 201, created.text
    before = api.get(f"/sequences/{created.json()['id']}").json()
    assert_every_field_set(before)

    page = rep.client.get(f"/sequences/{before['id']}/edit")
    assert page.status_code == 200
    fields = [*form_fields(page.text, "sequence-editor"), ("op", "save")]
    saved = post_form(rep.client, f"/sequences/{before['id']}/edit", fields)
    assert saved.status_code == 303, saved.text

    after = api.get(f"/sequences/{before['id']}").json()
    assert without_volatile(after) == without_volatile(before)


def test_a_setting_the_editor_has_no_control_for_keeps_its_stored_value(api, rep):
    """A form that omits a setting (an older page, a setting added later) never resets it."""
    created = api.post("/sequences", json=FULL_SEQUENCE).json()
    page = rep.client.get(f"/sequences/{created['id']}/edit")
    fields = [
        (k, v.replace(",auto_reply_pause_days", "") if k == "settings_controls" else v)
        for k, v in form_fields(page.text, "sequence-editor")
        if k != "auto_reply_pause_days"
    ]
    saved = post_form(rep.client, f"/sequences/{created['id']}/edit", [*fields, ("op", "save")])
    assert saved.status_code == 303
    assert api.get(f"/sequences/{created['id']}").json()["settings"]["auto_reply_pause_days"] == 14


def test_a_bad_pause_length_in_the_editor_is_refused_on_the_page(api, rep):
    created = api.post("/sequences", json=FULL_SEQUENCE).json()
    page = rep.client.get(f"/sequences/{created['id']}/edit")
    fields = [
        (k, "0" if k == "auto_reply_pause_days" else v)
        for k, v in form_fields(page.text, "sequence-editor")
    ]
    answer = post_form(rep.client, f"/sequences/{created['id']}/edit", [*fields, ("op", "save")])
    assert answer.status_code == 422
    assert "auto_reply_pause_days" in answer.text
    assert api.get(f"/sequences/{created['id']}").json()["settings"]["auto_reply_pause_days"] == 14


def test_email_steps_drop_task_fields_nothing_reads(api):
    email = {
        "type": "email",
        "subject": "s",
        "body": "<p>b</p>",
        "task_title": "t",
        "task_notes": "n",
        "task_priority": "high",
        "continue_without_completing": True,
    }
    body = {"name": "x", "steps": [email]}
    step = api.post("/sequences", json=body).json()["steps"][0]
    assert (step["task_title"], step["task_notes"], step["task_priority"]) == (None, None, "none")
    assert step["continue_without_completing"] is False


def test_the_editor_has_a_control_for_every_sequence_setting():
    from dataclasses import fields

    from cadenza.domain.sequence_settings import SequenceSettings
    from cadenza.web.ui.sequence_editor import EDITOR_SETTINGS

    assert set(EDITOR_SETTINGS) == {f.name for f in fields(SequenceSettings)}


def test_variant_tabs_are_added_removed_and_saved_without_javascript(api, rep):
    created = api.post("/sequences", json={"name": "A/B", "steps": FULL_STEPS[:1]}).json()
    url = f"/sequences/{created['id']}/edit"
    fields = form_fields(rep.client.get(url).text, "sequence-editor")
    page = post_form(rep.client, url, [*fields, ("op", "variant-add:1")])
    assert page.status_code == 200 and 'id="step-1-variant-C"' in page.text
    fields = [
        (k, "Third try" if k == "step-1-variant-C-subject" else v)
        for k, v in form_fields(page.text, "sequence-editor")
    ]
    page = post_form(rep.client, url, [*fields, ("op", "variant-remove:1:B")])
    fields = form_fields(page.text, "sequence-editor")
    assert ("step-1-variant-B-subject", "Third try") in fields  # C became B
    assert not any(k.startswith("step-1-variant-C") for k, _ in fields)
    assert post_form(rep.client, url, [*fields, ("op", "save")]).status_code == 303
    [step] = api.get(f"/sequences/{created['id']}").json()["steps"]
    assert [(v["label"], v["subject"]) for v in step["variants"]] == [
        ("A", None),
        ("B", "Third try"),
    ]
    assert step["winner_after"] == 25

    page = post_form(rep.client, url, [*fields, ("op", "variant-remove:1:A")])
    fields = form_fields(page.text, "sequence-editor")
    assert ("step-1-variant_count", "0") in fields  # one variant left: no test at all
    tampered = [(k, "6" if k == "step-1-variant_count" else v) for k, v in fields]
    refused = post_form(rep.client, url, [*tampered, ("op", "save")])
    assert refused.status_code == 422 and "2 to 5 variants (6 given)" in refused.text
