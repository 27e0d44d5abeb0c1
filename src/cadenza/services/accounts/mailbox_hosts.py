"""Which mail servers a mailbox may name: the admin decides, the member chooses among them.

A mailbox's SMTP and IMAP hosts are connections the server opens from inside its own
network, with a conversation the user partly controls. So a member may use only the
hosts an admin allowed — `CADENZA_MAILBOX_HOSTS`, which by default holds the local
relay (`localhost`, 127.0.0.1, ::1), a common set-up; admins add their providers'
hosts there (names, `*.suffix`, addresses or networks). An admin (or the command line,
run by whoever runs the installation) may set any host, except one that is or resolves
to a link-local or cloud metadata address: nobody needs those for mail, and they are
what an attacker would aim at. Names that do not resolve yet are accepted; the
connection checks the address again (services/outbound.py) and connects only to it.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.orm import Session

from cadenza.domain.enums import UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.outbound import AllowList
from cadenza.services import outbound
from cadenza.services.context import Context
from cadenza.store.models import User

HOST_FIELDS = ("smtp_host", "imap_host")
MAX_HOST = 255


def check_hosts(ctx: Context, session: Session, actor_id: int | None, values: dict) -> None:
    """Refuses (HOST_NOT_ALLOWED) a host in `values` this actor may not use."""
    hosts = {f: values[f] for f in HOST_FIELDS if values.get(f)}
    if not hosts:
        return
    actor = session.get(User, actor_id) if actor_id is not None else None
    allowed = AllowList.parse(ctx.settings.mailbox_hosts)
    for field, host in hosts.items():
        _check_syntax(field, host)
        if actor is not None and actor.role != UserRole.ADMIN and not allowed.has_host(host):
            raise CadenzaError(
                ErrorCode.HOST_NOT_ALLOWED,
                f"{host} is not one of the mail servers an admin allowed; ask an admin to "
                "add it (CADENZA_MAILBOX_HOSTS) or to set up this mailbox",
                {"field": field, "host": host},
            )
        # A name that does not resolve yet is judged again, by address, on connecting.
        with contextlib.suppress(outbound.Unresolvable):
            outbound.mailbox_target(host, 25, field)


def _check_syntax(field: str, host: str) -> None:
    if len(host) > MAX_HOST or not host.isprintable() or any(c.isspace() for c in host):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{field} must be a host name or address without spaces, at most {MAX_HOST} long",
            {"field": field},
        )
