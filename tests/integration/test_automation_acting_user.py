"""A rule acting as a named user sends from that user's mailbox: contacts someone else
put on the list it watches are enrolled only if that someone may act for the user."""

from sqlalchemy import select

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.crm import lists
from cadenza.store.models import Enrollment


def _rule_as_rep(ctx, world, admin, contact_list):
    return automation_rules.create_rule(
        ctx, admin.id, name=f"as rep on {contact_list.name}", sequence_id=world.sequence.id,
        trigger={"type": "list_added", "list_id": contact_list.id},
        action={"type": "enroll", "user_id": world.user.id},
    )  # fmt: skip


def _enrolled(ctx) -> dict[int, tuple[int, int]]:
    with ctx.db.read() as session:
        return {
            e.contact_id: (e.enrolled_by_id, e.mailbox_id)
            for e in session.scalars(select(Enrollment))
        }


def test_a_rule_as_a_named_user_skips_contacts_added_by_someone_who_may_not_act_for_them(
    ctx, world, worker
):
    rep = world.user
    other = create_user(ctx, "olive@example.com")
    create_mailbox(ctx, other.id, "olive@example.com")
    admin = create_user(ctx, "boss@example.com", role="admin")
    olives = lists.create_list(ctx, other.id, "Olive's", "static").contact_list
    reps = lists.create_list(ctx, rep.id, "Riley's", "static").contact_list
    on_olives = _rule_as_rep(ctx, world, admin, olives)
    on_reps = _rule_as_rep(ctx, world, admin, reps)
    by_other = world.contact("o@corp.example")
    by_admin = world.contact("a@corp.example")
    by_rep = world.contact("r@corp.example")

    lists.change_members(ctx, other.id, olives.id, add=[by_other.id])
    lists.change_members(ctx, admin.id, olives.id, add=[by_admin.id])
    lists.change_members(ctx, rep.id, reps.id, add=[by_rep.id])
    worker.tick()

    # Only the rep themself and an admin may make the rep's mailbox send.
    assert _enrolled(ctx) == {
        by_admin.id: (rep.id, world.mailbox.id),
        by_rep.id: (rep.id, world.mailbox.id),
    }
    log = {r.contact_id: (r.outcome, r.code) for r in automation_rules.list_runs(ctx, on_olives.id)}
    assert log == {by_other.id: ("skipped", "permission_denied"), by_admin.id: ("enrolled", None)}
    [run] = automation_rules.list_runs(ctx, on_reps.id)
    assert (run.contact_id, run.outcome) == (by_rep.id, "enrolled")
