"""An OAuth mailbox reads its replies over IMAP with SASL XOAUTH2: a real dovecot whose
oauth2 passdb asks the local authorization server (RFC 7662 introspection) whether the
token is live. Connect, send over XOAUTH2, a reply arrives, the poller logs in with the
token and ends the enrollment; once the owner revokes consent, dovecot refuses it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.enums import EnrollmentState, UnenrollReason
from cadenza.engine.inbox import poll_mailbox
from cadenza.services.accounts.mailboxes import get_mailbox
from cadenza.store.models import Enrollment, Message
from tests.conftest import enroll_ids
from tests.integration.test_oauth_mailboxes import REDIRECT, TWO_STEPS, connect, finish
from tests.support.dovecot import Dovecot
from tests.support.inbound_mail import inbound_mail
from tests.support.oauth_server import google_preset_settings


@pytest.fixture
def dovecot(oauth_server):
    # dovecot is a resource server of its own: its client id and secret for introspection
    client_id, secret = oauth_server.register_client("http://127.0.0.1/unused", "")
    url = oauth_server.introspection_url(client_id, secret)
    with Dovecot("rep@example.com", oauth2_introspection_url=url) as server:
        yield server


@pytest.fixture
def settings(settings, oauth_server, oauth_sink, dovecot):
    imap = {
        "oauth_google_imap_host": dovecot.host,
        "oauth_google_imap_port": dovecot.port,
        "oauth_google_imap_security": "none",
    }
    return google_preset_settings(settings, oauth_server, oauth_sink, REDIRECT, **imap)


def test_a_reply_is_read_over_imap_xoauth2_and_ends_the_enrollment(
    ctx, world, worker, oauth_sink, dovecot, oauth_server
):
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    assert (mailbox.imap_host, mailbox.imap_port) == (dovecot.host, dovecot.port)
    sequence = world.make_sequence(steps=TWO_STEPS)
    [eid] = enroll_ids(world, [world.contact()], sequence=sequence, mailbox_id=mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(oauth_sink.messages) == 1
    with ctx.db.read() as session:
        message = session.scalars(select(Message).where(Message.enrollment_id == eid)).one()
        message_id, subject = message.message_id, message.subject
    dovecot.append(
        inbound_mail("reply_gmail", contact="ann@corp.example", message_id=message_id,
                     subject=subject),
        msg_time=ctx.clock.now(),
    )  # fmt: skip

    result = poll_mailbox(ctx, get_mailbox(ctx, mailbox.id))
    assert result.error is None and result.fetched == 1
    with ctx.db.read() as session:
        enrollment = session.get_one(Enrollment, eid)
        assert (enrollment.state, enrollment.reason) == (
            EnrollmentState.UNENROLLED,
            UnenrollReason.REPLIED,
        )
    assert get_mailbox(ctx, mailbox.id).imap_password is None  # only the token logged in

    oauth_server.revoke_grants("rep@example.com")  # the token is dead; ours does not know yet
    refused = poll_mailbox(ctx, get_mailbox(ctx, mailbox.id))
    assert refused.error and "AUTHENTICATIONFAILED" in refused.error
    assert get_mailbox(ctx, mailbox.id).connected  # a read failing disconnects nothing
