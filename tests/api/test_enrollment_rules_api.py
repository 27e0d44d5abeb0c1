"""Enrollment rules over HTTP, on both databases: a sequence's rules in and out, each
refusal with its code, details and `overridable` in the dry run and the result, an override
refused (403) without the permission and accepted with it, bad values 422."""

from sqlalchemy import select

from cadenza.services.accounts.users import update_user
from cadenza.store.models import AuditEntry
from tests.conftest import assert_error, backend_independent, enroll_ids
from tests.conftest import enroll_over_api as enroll

STEPS = [{"type": "email", "subject": "Hi", "body": "<p>Hello</p>"}]


def make_sequence(api, rules):
    answer = api.post(
        "/sequences",
        json={"name": "Ruled", "settings": {"enrollment_rules": rules}, "steps": STEPS},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_rules_refuse_with_their_code_and_an_override_needs_the_permission(api, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    enroll_ids(world, [ann])  # live in the world's sequence
    ruled = make_sequence(api, {"exclusivity": "any", "reenrollment": "once"})
    assert ruled["settings"]["enrollment_rules"] == {
        "exclusivity": "any", "reenrollment": "once", "min_days_since_emailed": None,
    }  # fmt: skip
    for dry_run in (True, False):
        answer = enroll(api, world, [ann, bob], sequence_id=ruled["id"], dry_run=dry_run)
        refused, ok = answer.json()["results"]
        assert (refused["code"], refused["overridable"], ok["ok"]) == (
            "in_another_sequence", True, True,
        )  # fmt: skip
        assert refused["details"]["sequence_id"] == world.sequence.id
    [again] = enroll(api, world, [bob], sequence_id=ruled["id"]).json()["results"]
    assert (again["code"], again["overridable"]) == ("already_enrolled", False)

    override = {"sequence_id": ruled["id"], "override_rules": [ann.id]}
    error = assert_error(enroll(api, world, [ann], **override), 403, "override_not_allowed")
    assert "permission" in error["message"]
    update_user(api.ctx, world.user.id, can_override_enrollment_rules=True)
    [done] = enroll(api, world, [ann], **override).json()["results"]
    assert done["ok"] and "rule_overridden" in [w["code"] for w in done["warnings"]]
    as_admin = {"role": "admin", "mailbox_id": world.mailbox.id, "dry_run": True}
    [admin_dry] = enroll(api, world, [ann], **as_admin, **override).json()["results"]
    assert admin_dry["code"] == "already_enrolled"  # now live there: never overridable
    with api.ctx.db.read() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "enrollment.override_rules")
        ).one()
    assert audit.actor_id == world.user.id and audit.data["overridden"][0]["rule"] == (
        "in_another_sequence"
    )


@backend_independent
def test_bad_rules_and_smuggled_rules_are_422(api, world):
    ann = world.contact()
    for bad in (
        {"exclusivity": "sometimes"},
        {"reenrollment": "twice"},
        {"min_days_since_emailed": -1},
        {"min_days_since_emailed": 400},
        {"min_days_since_emailed": "7"},
        {"cooldown": 1},
    ):
        answer = api.post(
            "/sequences",
            json={"name": "Bad", "settings": {"enrollment_rules": bad}, "steps": STEPS},
        )
        assert answer.status_code == 422, (bad, answer.text)
    smuggled = {"settings": {"enrollment_rules": {"exclusivity": "none"}}}
    assert enroll(api, world, [ann], **smuggled).status_code == 422
    assert enroll(api, world, [ann], override_rules=["x"]).status_code == 422
    too_many = {"override_rules": list(range(1, 502))}
    assert enroll(api, world, [ann], **too_many).status_code == 422
