"""`cadenza dkim …`: DKIM keys for the sending domains of a team's own relay."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.dkim import DkimKeyView, delete_key, generate_key, list_keys

app = typer.Typer(help="DKIM signing keys, one per sending domain.", no_args_is_help=True)


def _print_record(key: DkimKeyView) -> None:
    console.print(f"Publish this TXT record for {key.domain}:", highlight=False)
    console.print(f"  name:  {key.record_name}", highlight=False, soft_wrap=True)
    console.print(f"  value: {key.record_value}", highlight=False, soft_wrap=True)


@app.command("generate")
@fails_cleanly
def generate_command(
    domain: str,
    selector: str = typer.Option("cadenza", help="The DNS label the record is published under."),
    replace: bool = typer.Option(False, help="Replace the domain's key (a rotation)."),
) -> None:
    """Create the domain's signing key (kept sealed) and print its DNS TXT record; mail
    from the domain is signed from the next email composed on."""
    _print_record(generate_key(make_context(), domain, selector, replace=replace))


@app.command("show")
@fails_cleanly
def show_command(domain: str) -> None:
    """Print a domain's DNS TXT record again."""
    for key in list_keys(make_context()):
        if key.domain == domain.strip().lower().rstrip("."):
            _print_record(key)
            return
    raise CadenzaError(ErrorCode.NOT_FOUND, f"{domain} has no DKIM key")


@app.command("list")
@fails_cleanly
def list_command() -> None:
    """The domains that sign, with their selectors."""
    table = Table("domain", "selector", "record", "created")
    for key in list_keys(make_context()):
        table.add_row(key.domain, key.selector, key.record_name, f"{key.created_at:%Y-%m-%d}")
    console.print(table)


@app.command("delete")
@fails_cleanly
def delete_command(domain: str) -> None:
    """Stop signing the domain's mail (remove its DNS record afterwards)."""
    delete_key(make_context(), domain)
    console.print(f"{domain}: DKIM key deleted; its mail goes out unsigned")
