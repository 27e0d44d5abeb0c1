"""Who the command line acts as: said once, remembered, shown by `cadenza whoami`.

With one user there is nothing to say. Once a second exists every command that acts
would ask again, so the choice is taken, first found, from: `--as EMAIL` on the
command, `CADENZA_CLI_USER`, then the file `cadenza use EMAIL` writes
(`$XDG_CONFIG_HOME/cadenza/config.toml`, else `~/.config/cadenza/config.toml`, or the
file `CADENZA_CONFIG` names), then the only user. The file holds `user = "EMAIL"`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.users import UserView, find_user_by_email, first_users
from cadenza.services.context import Context

HOW_TO_CHOOSE = (
    "run `cadenza use EMAIL` once (remembered in {path}), or give --as EMAIL, "
    "or set CADENZA_CLI_USER=EMAIL"
)


def config_path() -> Path:
    named = os.environ.get("CADENZA_CONFIG")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cadenza" / "config.toml"


def read_config() -> dict:
    path = config_path()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"cannot read {path}: {exc}") from None


def remember_user(email: str | None) -> Path:
    """Writes (or, with None, forgets) the user in the config file, keeping other keys."""
    path = config_path()
    data = {k: v for k, v in read_config().items() if k != "user"}
    if email is not None:
        data["user"] = email
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {json.dumps(value)}" for key, value in data.items() if _plain(value)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _plain(value) -> bool:
    """JSON's string, number and boolean forms are also TOML's."""
    return isinstance(value, (str, int, float, bool))


@dataclass(frozen=True)
class Identity:
    user: UserView
    source: str  # which of the choices above named the user


def resolve(ctx: Context, email: str | None) -> Identity:
    if email:
        return Identity(find_user_by_email(ctx, email), "--as")
    if ctx.settings.cli_user:
        return Identity(_named(ctx, ctx.settings.cli_user, "CADENZA_CLI_USER"), "CADENZA_CLI_USER")
    remembered = read_config().get("user")
    if isinstance(remembered, str) and remembered.strip():
        where = str(config_path())
        return Identity(_named(ctx, remembered, where), where)
    users = first_users(ctx, 2)
    if len(users) == 1:
        return Identity(users[0], "the only user")
    if not users:
        raise CadenzaError(
            ErrorCode.USER_NOT_FOUND, "there are no users yet: `cadenza user create EMAIL`"
        )
    raise CadenzaError(
        ErrorCode.USER_NOT_FOUND,
        "say which user you act as: " + HOW_TO_CHOOSE.format(path=config_path()),
    )


def _named(ctx: Context, email: str, where: str) -> UserView:
    try:
        return find_user_by_email(ctx, email)
    except CadenzaError as exc:
        how = HOW_TO_CHOOSE.format(path=config_path())
        raise CadenzaError(exc.code, f"{exc.message} (named by {where}): {how}") from None
