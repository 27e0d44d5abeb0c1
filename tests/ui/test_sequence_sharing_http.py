"""A private sequence over HTTP (no browser), on SQLite and PostgreSQL: absent from every
page that lists sequences for another member, its pages not found; the share, move and
clone forms answer per the policy, and the sequence page lists its running enrollments."""

from __future__ import annotations

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.crm import lists
from cadenza.services.sequences import playbooks
from tests.conftest import enroll_ids
from tests.ui.conftest import Ui


def test_a_private_sequence_is_nowhere_for_another_member(ctx, world, rep):
    secret = world.make_sequence(name="Secret play")
    playbooks.update_placement(ctx, secret.id, actor_id=None, sharing="private", folder="Hush")
    [enrollment] = enroll_ids(world, [world.contact("ann@corp.example")], secret)
    made = lists.create_list(ctx, world.user.id, "Leads", "static").contact_list
    bea = create_user(ctx, "bea@example.com", password="bea-secret")
    create_mailbox(ctx, bea.id, "bea@example.com")
    other = Ui(ctx, world).sign_in("bea@example.com", "bea-secret", "/tasks")

    for page in ("/sequences", "/sequences?folder=Hush", "/enroll", "/enrollments",
                 f"/lists/{made.id}"):  # fmt: skip
        answer = other.client.get(page)
        assert answer.status_code == 200, (page, answer.text[-300:])
        assert "Secret play" not in answer.text, page
        assert 'data-folder="Hush"' not in answer.text, page  # not in the folder sidebar
    for page in ("", "/enroll", "/edit"):
        assert other.client.get(f"/sequences/{secret.id}{page}").status_code == 404, page
    forms = {"sharing": {"sharing": "team_edit"}, "folder": {"folder": "Mine"},
             "clone": {"name": "Stolen"}, "archive": {}}  # fmt: skip
    for action, data in forms.items():
        answer = other.client.post(f"/sequences/{secret.id}/{action}",
                                   data={**data, "csrf_token": other.token})  # fmt: skip
        assert answer.status_code == 404, action

    # The owner sees it, its running enrollment, and files and shares it from its page.
    page = rep.client.get(f"/sequences/{secret.id}").text
    assert f'href="/enrollments/{enrollment}"' in page and "ann@corp.example" in page
    assert f"/enrollments?sequence={secret.id}&amp;state=active" in page
    assert 'id="share-dialog"' in page and "In folder" in page
    shared = rep.client.post(f"/sequences/{secret.id}/sharing", follow_redirects=False,
                             data={"sharing": "team_use", "csrf_token": rep.token})  # fmt: skip
    assert shared.status_code == 303
    assert "Secret play" in other.client.get("/sequences?folder=Hush").text
    refused = other.client.post(f"/sequences/{secret.id}/sharing",
                                data={"sharing": "private", "csrf_token": other.token})  # fmt: skip
    assert refused.status_code == 403
    bad = rep.client.post(f"/sequences/{secret.id}/folder",
                          data={"folder": "a/b", "csrf_token": rep.token})  # fmt: skip
    assert bad.status_code == 422 and "folder may not contain" in bad.text
