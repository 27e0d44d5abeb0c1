"""The installation's sealing keys, kept outside the database, and the columns they seal.

Where the keys come from, first match wins:
1. `CADENZA_SECRET_KEY` (the current key) and `CADENZA_OLD_SECRET_KEYS` (comma-separated
   keys still accepted for opening while a rotation runs): for several hosts sharing one
   database, and for anyone who keeps secrets in their environment or a vault.
2. `CADENZA_KEY_FILE`, or by default a file beside the SQLite database (`cadenza.db.key`;
   `cadenza.key` in the working directory for PostgreSQL): created once, mode 0600, one
   base64 key per line, the current key first.

So a copy of the database alone (a backup, a leaked dump, a read-only SQL injection)
holds ciphertexts only: the mailbox passwords, the webhook secrets and the link-signing
key (which also derives the session-cookie key) cannot be read, nor anything signed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.sealing import Keyring, SealError, is_sealed, key_from_passphrase, new_key
from cadenza.services.context import Context
from cadenza.store.models import AppSecret, DkimKey, Mailbox, OAuthState, Webhook

# Every column that holds a sealed value: what rotation re-seals and first start seals.
SEALED_COLUMNS = (
    (Mailbox, "smtp_password"),
    (Mailbox, "imap_password"),
    (Mailbox, "oauth_access_token"),
    (Mailbox, "oauth_refresh_token"),
    (OAuthState, "code_verifier"),
    (Webhook, "secret"),
    (AppSecret, "value"),
    (DkimKey, "private_key"),
)


def purpose(model, column: str) -> str:
    """Bound into each ciphertext, so a value cannot be moved to another column."""
    return f"{model.__tablename__}.{column}"


@dataclass(frozen=True)
class KeySource:
    """Where this installation's keys are: the environment, or a file (its path)."""

    path: Path | None

    def describe(self) -> str:
        return f"key file {self.path}" if self.path else "CADENZA_SECRET_KEY"


def key_source(ctx: Context) -> KeySource:
    if ctx.settings.secret_key is not None:
        return KeySource(None)
    if ctx.settings.key_file:
        return KeySource(Path(ctx.settings.key_file))
    url = ctx.db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return KeySource(Path(url.database + ".key"))
    return KeySource(Path("cadenza.key"))


_lock = threading.Lock()
_file_cache: dict[Path, tuple[tuple[int, int, int], Keyring]] = {}


def keyring(ctx: Context) -> Keyring:
    """The keys now: re-read when the key file changed (a rotation by another process)."""
    source = key_source(ctx)
    if source.path is None:
        settings = ctx.settings
        phrases = [settings.secret_key.get_secret_value()]
        if settings.old_secret_keys is not None:
            old = settings.old_secret_keys.get_secret_value().split(",")
            phrases += [p.strip() for p in old if p.strip()]
        return Keyring(tuple(key_from_passphrase(p) for p in phrases))
    with _lock:
        return _file_keyring(source.path)


def _file_keyring(path: Path) -> Keyring:
    try:
        info = path.stat()
    except FileNotFoundError:
        _create_key_file(path)
        info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"the key file {path} may be read by other users: chmod 600 it",
        )
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _file_cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    lines = [line.strip() for line in path.read_text("ascii").splitlines()]
    try:
        keys = tuple(base64.urlsafe_b64decode(line) for line in lines if line and line[0] != "#")
        ring = Keyring(keys)
    except ValueError:
        raise CadenzaError(
            ErrorCode.INVALID_STATE, f"the key file {path} is damaged: one base64 key per line"
        ) from None
    _file_cache[path] = (stamp, ring)
    return ring


def _create_key_file(path: Path) -> None:
    """Once, and whole before anyone can read it: written to a file of its own beside
    it, then linked into place, which fails if another process's got there first (that
    one is whole too, and every process agrees on it). Created in place with O_EXCL and
    then written, the file was there empty for a moment: a second worker starting
    together with the first read no key in it and stopped ("damaged",
    bench/latency.py with two workers, docs/benchmarks.md, *Fifteenth session*)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(_key_file_text((new_key(),)))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process's is in place
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _key_file_text(keys: tuple[bytes, ...]) -> str:
    header = "# Cadenza sealing keys: the first seals, all open. Keep, back up, never share.\n"
    return header + "".join(base64.urlsafe_b64encode(k).decode("ascii") + "\n" for k in keys)


def _write_key_file(path: Path, keys: tuple[bytes, ...]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(_key_file_text(keys))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


# --- sealing and opening -------------------------------------------------------------


def seal(ctx: Context, value: str | None, model, column: str) -> str | None:
    if value is None or value == "":
        return value
    return keyring(ctx).seal(value, purpose(model, column))


def open_sealed(ctx: Context, value: str | None, model, column: str) -> str | None:
    """The clear value. A value stored before sealing existed is returned as it is (it is
    sealed by `seal_everything` at the next start)."""
    if not value or not is_sealed(value):
        return value
    try:
        return keyring(ctx).open(value, purpose(model, column))
    except SealError as exc:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"a stored secret cannot be opened with the keys of {key_source(ctx).describe()}: "
            f"{exc}",
        ) from None


def unopenable(ctx: Context) -> dict[str, int]:
    """How many stored sealed values, per column, the keys now cannot open: read-only,
    for `cadenza doctor` (a key file lost or replaced, a wrong CADENZA_SECRET_KEY)."""
    ring = keyring(ctx)
    failures: dict[str, int] = {}
    with ctx.db.read() as session:
        for model, column in SEALED_COLUMNS:
            attribute = getattr(model, column)
            for value in session.scalars(select(attribute).where(attribute.is_not(None))):
                if not is_sealed(value):
                    continue
                try:
                    ring.open(value, purpose(model, column))
                except SealError:
                    what = purpose(model, column)
                    failures[what] = failures.get(what, 0) + 1
    return failures


@dataclass(frozen=True)
class ResealReport:
    sealed: int  # clear values found and sealed
    resealed: int  # values moved to the current key
    key_id: str


def seal_everything(ctx: Context) -> ResealReport:
    """Seals clear values and re-seals older-key values under the current key, in one
    transaction: run at start (after an upgrade) and by `cadenza secrets rotate`."""
    ring = keyring(ctx)
    sealed = resealed = 0
    with ctx.db.transaction() as session:
        for model, column in SEALED_COLUMNS:
            attribute = getattr(model, column)
            query = select(model).where(attribute.is_not(None), attribute != "")
            for row in session.scalars(query.with_for_update()):
                value = getattr(row, column)
                what = purpose(model, column)
                if not is_sealed(value):
                    setattr(row, column, ring.seal(value, what))
                    sealed += 1
                elif not ring.sealed_with_current(value):
                    try:
                        clear = ring.open(value, what)
                    except SealError as exc:
                        raise CadenzaError(ErrorCode.INVALID_STATE, str(exc)) from None
                    setattr(row, column, ring.seal(clear, what))
                    resealed += 1
    return ResealReport(sealed, resealed, ring.current_id)


def rotate(ctx: Context) -> ResealReport:
    """A new current key, every sealed value re-sealed under it, then the old keys dropped.

    With a key file the whole rotation happens here; the old keys stay in the file while
    values are re-sealed, so every process can still open them meanwhile (others re-read
    the file when it changes). With CADENZA_SECRET_KEY the operator sets the new key and
    moves the old one to CADENZA_OLD_SECRET_KEYS first; this re-seals, after which the
    old keys may be removed from the environment.
    """
    source = key_source(ctx)
    if source.path is None:
        return seal_everything(ctx)
    with _lock:
        old = _file_keyring(source.path).keys
        _write_key_file(source.path, (new_key(), *old))
    report = seal_everything(ctx)
    current = keyring(ctx).keys[0]
    with _lock:
        _write_key_file(source.path, (current,))
    return report
