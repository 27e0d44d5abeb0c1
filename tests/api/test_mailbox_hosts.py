"""Mailbox hosts: members choose among the hosts an admin allowed (by default the local
relay); admins may set any host but link-local and metadata addresses."""

from __future__ import annotations

import pytest

from cadenza.services.accounts import mailboxes
from tests.conftest import assert_error

METADATA_OR_LINK_LOCAL = ["169.254.169.254", "[fd00:ec2::254]", "169.254.3.4", "fe80::1"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_a_member_may_use_the_local_relay_by_default(api, host):
    body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host}
    created = api.post("/mailboxes", json=body, role="member")
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("host", ["smtp.corp.example", "10.0.0.25", "192.168.1.1", "127.0.0.2"])
def test_a_member_may_not_name_another_host(api, host):
    body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host}
    error = assert_error(api.post("/mailboxes", json=body), 422, "host_not_allowed")
    assert error["details"] == {"field": "smtp_host", "host": host}
    assert api.get("/mailboxes").json()["results"][1:] == []  # nothing half-written
    imap = {"from_email": "sam@corp.example", "imap_host": host}
    assert_error(api.post("/mailboxes", json=imap), 422, "host_not_allowed")


def test_a_member_may_not_move_a_mailbox_to_another_host(api, world):
    path = f"/mailboxes/{world.mailbox.id}"
    for change in ({"transport": "smtp", "smtp_host": "10.1.1.1"}, {"imap_host": "10.1.1.1"}):
        assert_error(api.patch(path, json=change), 422, "host_not_allowed")
    assert api.get(path).json()["transport"] == "capture"


def test_the_installation_allow_list_opens_hosts_for_members(api, ctx):
    ctx.settings = ctx.settings.model_copy(
        update={"mailbox_hosts": "localhost, *.mail.corp.example, 10.20.0.0/16"}
    )
    for host in ("smtp.mail.corp.example", "10.20.3.4"):
        body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host}
        assert api.post("/mailboxes", json=body).status_code == 201, host
    body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": "127.0.0.1"}
    assert_error(api.post("/mailboxes", json=body), 422, "host_not_allowed")


def test_an_admin_may_set_any_host_for_a_member(api):
    member = api.users["member"].id
    for host in ("smtp.corp.example", "10.0.0.25"):
        body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host,
                "owner_id": member}  # fmt: skip
        created = api.post("/mailboxes", json=body, role="admin")
        assert created.status_code == 201 and created.json()["owner_id"] == member


@pytest.mark.parametrize("host", METADATA_OR_LINK_LOCAL)
def test_nobody_may_aim_a_mailbox_at_metadata_or_link_local(api, ctx, world, host):
    for field in ("smtp_host", "imap_host"):
        body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": "localhost",
                field: host}  # fmt: skip
        error = assert_error(api.post("/mailboxes", json=body, role="admin"), 422,
                             "host_not_allowed")  # fmt: skip
        assert error["details"]["field"] == field
    ctx.settings = ctx.settings.model_copy(update={"mailbox_hosts": "0.0.0.0/0, ::/0"})
    body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host}
    assert_error(api.post("/mailboxes", json=body), 422, "host_not_allowed")
    # The command line acts for the installation: the same floor holds.
    with pytest.raises(Exception) as refused:
        mailboxes.update_mailbox(ctx, world.mailbox.id, {"imap_host": host})
    assert getattr(refused.value, "code", None) == "host_not_allowed"


def test_a_host_with_spaces_or_control_characters_is_refused(api):
    for host in ("smtp corp", "smtp\tcorp", "a" * 256):
        body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": host}
        assert_error(api.post("/mailboxes", json=body, role="admin"), 422, "validation_error")
