"""Issue 11 item 12 over HTTP (both databases): step lists, the "Start at" choice and the
editor preview show text filled with data, never template code, and keep the "Re:"."""

from __future__ import annotations

import re

from tests.support.full_sequence import form_fields, post_form


def options(page: str, select_id: str) -> list[str]:
    block = re.search(rf'<select id="{select_id}".*?</select>', page, re.S).group(0)
    return [re.sub(r"\s+", " ", o).strip() for o in re.findall(r"<option[^>]*>(.*?)</option>",
                                                              block, re.S)]  # fmt: skip


def test_the_sequence_page_lists_steps_as_text(rep, world):
    page = rep.client.get(f"/sequences/{world.sequence.id}").text
    headlines = re.findall(r'<div class="step-headline">(.*?)</div>', page)
    assert headlines == ["Hi Alex", "Re: Hi Alex", "Call Alex"]
    assert "{{" not in page.split('id="analytics"')[0]


def test_start_at_shows_the_chosen_contacts_own_subjects(rep, world):
    ann = world.contact(firstname="Ann")
    page = rep.client.get(f"/enroll?contact={ann.id}&sequence={world.sequence.id}").text
    assert options(page, "start_step") == [
        "Step 1: email — Hi Ann", "Step 2: email — Re: Hi Ann", "Step 3: task — Call Ann"
    ]  # fmt: skip
    two = world.contact("bo@corp.example", firstname="Bo")
    page = rep.client.get(
        f"/enroll?contact={ann.id}&contact={two.id}&sequence={world.sequence.id}"
    ).text
    assert options(page, "start_step")[0] == "Step 1: email — Hi Alex"  # sample data


def test_the_editor_preview_keeps_the_re_of_a_threaded_step(rep, world):
    ann = world.contact(firstname="Ann")
    editor = rep.client.get(f"/sequences/{world.sequence.id}/edit").text
    fields = [(k, v) for k, v in form_fields(editor, "sequence-editor") if k != "op"]
    fields.append(("preview_contact", str(ann.id)))
    answer = post_form(rep.client, f"/sequences/{world.sequence.id}/preview", fields)
    subjects = re.findall(r'<span class="preview-subject">(.*?)</span>', answer.text)
    assert subjects == ["Hi Ann", "Re: Hi Ann", "Call Ann"]
    # Threading switched off: a threaded step without a subject of its own still reads
    # as the reply it is, never as an empty or raw subject.
    unthreaded = [(k, v) for k, v in fields if k != "thread_follow_ups"]
    answer = post_form(rep.client, f"/sequences/{world.sequence.id}/preview", unthreaded)
    assert re.findall(r'<span class="preview-subject">(.*?)</span>', answer.text)[1] == (
        "Re: Hi Ann"
    )
