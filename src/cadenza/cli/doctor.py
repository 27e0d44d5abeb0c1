"""`cadenza doctor`: checks an installation and says what to fix.

What goes wrong in a new installation is rarely the code: links in emails that point
at 127.0.0.1, a key file that is world-readable or lost, a schema not upgraded, a
mailbox whose password changed, an inbox nobody reads, a DKIM record never published.
Each check here reads what the running installation would use (the same settings, the
same transports, the same sealed secrets) and changes nothing: a connection test logs
in and out, sends nothing.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import typer
from rich.table import Table

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.cli.public_url import LOOPBACK
from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.domain.enums import MailTransport
from cadenza.domain.errors import CadenzaError
from cadenza.engine import inbox
from cadenza.engine.transports.factory import transport_for
from cadenza.services.accounts import dkim, keys, mailboxes
from cadenza.services.accounts.connection_tests import CHECK_TIMEOUT_SECONDS, check_settings
from cadenza.services.context import Context
from cadenza.services.oauth import tokens as oauth_tokens
from cadenza.store import migrate

DNS_TIMEOUT_SECONDS = 3.0


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warning"  # works, but not as a team would want
    FAIL = "failed"  # broken: fix it
    SKIPPED = "not checked"  # could not be checked from here (no DNS, say)


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    verdict: Verdict
    detail: str
    fix: str = ""


def public_url(ctx: Context) -> Iterator[Finding]:
    url = ctx.settings.public_url
    if "public_url" not in ctx.settings.model_fields_set:
        yield Finding(
            "public URL",
            url,
            Verdict.WARN,
            "CADENZA_PUBLIC_URL is not set: unsubscribe, open and click links lead to this default",
            "set CADENZA_PUBLIC_URL to the address recipients reach (https://cadenza.example.com)",
        )
        return
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK:
        yield Finding(
            "public URL",
            url,
            Verdict.FAIL,
            "links in emails lead to this machine, which recipients cannot reach",
            "set CADENZA_PUBLIC_URL to the public address",
        )
    elif urlsplit(url).scheme != "https":
        yield Finding(
            "public URL",
            url,
            Verdict.WARN,
            "links in emails are plain http",
            "serve behind TLS and use https",
        )
    else:
        yield Finding("public URL", url, Verdict.OK, "links in emails lead here")


def secret_key(ctx: Context) -> Iterator[Finding]:
    source = keys.key_source(ctx)
    if source.path is not None:
        if not source.path.exists():
            yield Finding(
                "secret key",
                str(source.path),
                Verdict.WARN,
                "no key file yet: the first start creates it",
                "back the key file up apart from the database once created",
            )
            return
        mode = stat.S_IMODE(source.path.stat().st_mode)
        if mode & 0o077:
            yield Finding(
                "secret key",
                str(source.path),
                Verdict.FAIL,
                f"the key file is readable by others (mode {mode:o})",
                f"chmod 600 {source.path}",
            )
            return
    broken = keys.unopenable(ctx)
    if broken:
        columns = ", ".join(f"{column} ({count})" for column, count in sorted(broken.items()))
        yield Finding(
            "secret key",
            source.describe(),
            Verdict.FAIL,
            f"stored secrets this key cannot open: {columns}",
            "restore the key these were sealed with (or CADENZA_OLD_SECRET_KEYS)",
        )
        return
    yield Finding(
        "secret key",
        source.describe(),
        Verdict.OK,
        "outside the database; every stored secret opens with it",
    )


def schema(ctx: Context) -> Iterator[Finding]:
    try:
        current = migrate.is_current(ctx.db)
    except Exception as exc:  # the database cannot be reached: say so, do not crash
        yield Finding(
            "database",
            ctx.db.url.split("@")[-1],
            Verdict.FAIL,
            f"cannot be reached: {type(exc).__name__}",
            "check CADENZA_DATABASE_URL",
        )
        return
    if current:
        yield Finding("database", "schema", Verdict.OK, "migrated to the latest version")
    else:
        yield Finding(
            "database",
            "schema",
            Verdict.FAIL,
            "migrations are pending",
            "stop the workers, then run `cadenza db upgrade`",
        )


def mailbox_connections(ctx: Context) -> Iterator[Finding]:
    for box in mailboxes.list_mailboxes(ctx):
        yield from _sending(ctx, box)
        yield from _inbox(ctx, box)


def _sending(ctx: Context, box: mailboxes.MailboxView) -> Iterator[Finding]:
    name = f"mailbox {box.id} {box.from_email}"
    if box.transport != MailTransport.SMTP:
        yield Finding("sending", name, Verdict.OK, f"{box.transport}: sends nothing real")
        return
    if not box.connected:
        yield Finding(
            "sending",
            name,
            Verdict.FAIL,
            f"disconnected: {box.disconnected_reason}",
            "fix its settings, then reconnect it in Settings",
        )
    oauth_tokens.refresh_if_due(ctx, box.id)  # as the worker does before it sends
    settings = mailboxes.transport_settings(ctx, box.id, timeout=CHECK_TIMEOUT_SECONDS)
    result = check_settings(settings, transport_for)
    if result.outcome is DeliveryOutcome.SENT:
        yield Finding("SMTP", name, Verdict.OK, f"{box.smtp_host}: {result.reply}")
    else:
        yield Finding(
            "SMTP",
            name,
            Verdict.FAIL,
            f"{box.smtp_host}: {result.code or ''} {result.reply}".strip(),
            "check the SMTP host, port, security, username and password",
        )


def _inbox(ctx: Context, box: mailboxes.MailboxView) -> Iterator[Finding]:
    """The same login as the settings page's "Test inbox" (engine.inbox.check_login)."""
    name = f"mailbox {box.id} {box.from_email}"
    if mailboxes.misses_replies(box):
        yield Finding(
            "IMAP",
            name,
            Verdict.WARN,
            "no inbox is read: a contact who replies keeps getting follow-ups",
            "add the mailbox's IMAP settings in Settings",
        )
    if not box.imap_host:
        return
    result = inbox.check_login(ctx, box)
    if result.outcome is DeliveryOutcome.SENT:
        yield Finding("IMAP", name, Verdict.OK, f"{box.imap_host}: logged in; replies are read")
    else:
        yield Finding(
            "IMAP",
            name,
            Verdict.FAIL,
            f"{box.imap_host}: {result.reply}",
            "check the IMAP host, port, security, username and password",
        )


TxtLookup = Callable[[str], list[str]]


def dns_lookup(server: str | None) -> TxtLookup:
    """TXT records of a name, from the system's resolver or `server` (HOST[:PORT])."""
    resolver = dns.resolver.Resolver(configure=server is None)
    if server is not None:
        host, _, port = server.rpartition(":") if ":" in server else (server, "", "53")
        resolver.nameservers, resolver.port = [host], int(port)
    resolver.lifetime = DNS_TIMEOUT_SECONDS

    def lookup(name: str) -> list[str]:
        answer = resolver.resolve(name, "TXT")
        return [b"".join(record.strings).decode("ascii", "replace") for record in answer]

    return lookup


def dkim_records(ctx: Context, lookup: TxtLookup) -> Iterator[Finding]:
    for key in dkim.list_keys(ctx):
        try:
            found = lookup(key.record_name)
        except (dns.exception.DNSException, OSError) as exc:
            yield Finding(
                "DKIM",
                key.domain,
                Verdict.SKIPPED,
                f"{key.record_name} could not be read: {type(exc).__name__}",
                f'publish TXT {key.record_name} "{key.record_value}"',
            )
            continue
        published = {_public_key(text) for text in found}
        if key.public_key in published:
            yield Finding("DKIM", key.domain, Verdict.OK, f"{key.record_name} matches the key")
        else:
            yield Finding(
                "DKIM",
                key.domain,
                Verdict.FAIL,
                f"{key.record_name} does not hold this key: receivers reject the signatures",
                f'publish TXT {key.record_name} "{key.record_value}"',
            )


def _public_key(record: str) -> str:
    tags = dict(part.strip().partition("=")[::2] for part in record.split(";") if "=" in part)
    return "".join(tags.get("p", "").split())


def run_checks(ctx: Context, lookup: TxtLookup) -> list[Finding]:
    """Every check, in order. The ones that read the database wait for its schema to be
    current; one that cannot go on (a refused key file stops every secret from opening)
    becomes a failure with the reason, and the others still run."""
    findings = [*public_url(ctx), *schema(ctx)]
    checks: list[tuple[str, Callable[[], Iterator[Finding]]]] = [
        ("secret key", lambda: secret_key(ctx)),
        ("mailboxes", lambda: mailbox_connections(ctx)),
        ("DKIM", lambda: dkim_records(ctx, lookup)),
    ]
    if any(f.check == "database" and f.verdict is Verdict.FAIL for f in findings):
        return findings + [
            Finding(name, "-", Verdict.SKIPPED, "needs a current database schema")
            for name, _ in checks
        ]
    for name, check in checks:
        try:
            findings.extend(check())
        except CadenzaError as exc:
            findings.append(Finding(name, "-", Verdict.FAIL, exc.message, "fix this first"))
    return findings


_STYLE = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "red", Verdict.SKIPPED: "dim"}


@fails_cleanly
def doctor(
    dns_server: str = typer.Option(
        None, help="Read DKIM records from this DNS server (HOST[:PORT]) instead of the system's."
    ),
) -> None:
    """Check the installation: public URL, secret key, schema, each mailbox's SMTP and
    IMAP connection, DKIM records. Exits 1 when something must be fixed."""
    findings = run_checks(make_context(), dns_lookup(dns_server))
    table = Table("check", "subject", "result", "detail", "what to do")
    for finding in findings:
        style = _STYLE[finding.verdict]
        table.add_row(
            finding.check,
            finding.subject,
            f"[{style}]{finding.verdict}[/]",
            finding.detail,
            finding.fix,
        )
    console.print(table)
    failed = sum(1 for f in findings if f.verdict is Verdict.FAIL)
    console.print(f"{failed} problem(s) to fix" if failed else "No problem found.")
    if failed:
        raise typer.Exit(1)
