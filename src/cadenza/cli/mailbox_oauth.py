"""`cadenza mailboxes connect PROVIDER`: the OAuth 2.0 connect flow from a terminal.

It prints the provider's authorization URL; the user opens it in any browser, consents,
and the provider redirects to the registered redirect URI (the web app's
/oauth/callback by default). If the web app is not running there, the browser shows an
error page whose address still carries the code: paste that address back here. The
state in it must be the one this command started, for this user, within minutes.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import typer

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.oauth import connect as oauth


@fails_cleanly
def connect(
    provider: str = typer.Argument(..., help="google, microsoft or generic (as configured)."),
    redirect_uri: str = typer.Option(
        None, help="As registered in the provider's console (default: PUBLIC_URL/oauth/callback)."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Connect a Google, Microsoft or other OAuth 2.0 mailbox (owned by the acting user)."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    redirect = redirect_uri or f"{ctx.settings.public_url}/oauth/callback"
    url = oauth.start_connect(ctx, provider, redirect, actor_id=user.id)
    console.print("Open this address, sign in and allow access:", highlight=False)
    console.print(url, highlight=False, soft_wrap=True)
    pasted = typer.prompt("Then paste the address your browser was sent back to")
    query = {k: v[0] for k, v in parse_qs(urlsplit(pasted.strip()).query).items()}
    if "state" not in query:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "that address has no state= in it: paste all of it"
        )
    mailbox = oauth.finish_connect(
        ctx, query["state"], query.get("code"), actor_id=user.id, error=query.get("error")
    )
    console.print(f"mailbox {mailbox.id} connected: {mailbox.from_email} via {provider}")
