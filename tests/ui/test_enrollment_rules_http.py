"""The enroll dialog and the sequence editor with enrollment rules, over HTTP (no browser):
the refusal with its code and reason, the override box only for a permitted user, an
overridden enrollment; the editor saves a sequence's own rules and refuses bad ones."""

from __future__ import annotations

from cadenza.services.accounts.users import update_user
from cadenza.services.sequences.catalog import get_sequence
from tests.conftest import enroll_ids
from tests.support.full_sequence import form_fields, post_form
from tests.ui.conftest import enroll_form


def test_dialog_shows_the_rule_refusal_and_overrides_only_with_the_permission(rep, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    enroll_ids(world, [ann], sequence=world.make_sequence(name="Nurture"))
    form = enroll_form(rep.token, world, [ann, bob], confirm_warnings="on")
    check = rep.client.post("/enroll/check", data=form)
    assert 'data-code="in_another_sequence"' in check.text and "&#39;Nurture&#39;" in check.text
    assert 'name="override_rules"' not in check.text  # no permission, no box
    assert "1 of 2 can be enrolled" in check.text
    refused = rep.client.post("/enroll", data={**form, "override_rules": str(ann.id)})
    assert "you do not have permission to override enrollment rules" in refused.text

    update_user(rep.ctx, world.user.id, can_override_enrollment_rules=True)
    check = rep.client.post("/enroll/check", data=form)
    assert f'name="override_rules" value="{ann.id}">' in check.text
    ticked = rep.client.post("/enroll/check", data={**form, "override_rules": str(ann.id)})
    assert f'name="override_rules" value="{ann.id}" checked>' in ticked.text
    assert (
        "2 of 2 can be enrolled" in ticked.text and 'data-warning="rule_overridden"' in ticked.text
    )
    done = rep.client.post("/enroll", data={**form, "override_rules": str(ann.id)})
    assert "2 enrolled, 0 not enrolled" in done.text
    assert "in_another_sequence overridden" in done.text


def test_editor_saves_a_sequences_rules_and_refuses_bad_ones(rep, world):
    path = f"/sequences/{world.sequence.id}/edit"
    page = rep.client.get(path)
    assert 'id="rule_exclusivity"' in page.text and "installation default (any)" in page.text
    chosen = {"rule_exclusivity": "exclusive", "rule_reenrollment": "once", "rule_min_days": "14"}
    fields = [(k, v) for k, v in form_fields(page.text, "sequence-editor") if k not in chosen]
    saved = post_form(rep.client, path, [*fields, *chosen.items(), ("op", "save")])
    assert saved.status_code == 303, saved.text
    rules = get_sequence(rep.ctx, world.sequence.id).settings["enrollment_rules"]
    assert rules == {
        "exclusivity": "exclusive",
        "reenrollment": "once",
        "min_days_since_emailed": 14,
    }
    bad = post_form(rep.client, path, [*fields, ("rule_min_days", "999"), ("op", "save")])
    assert bad.status_code == 422 and "min_days_since_emailed" in bad.text
