"""Who the CLI acts as once there are several users (issue 11 item 6)."""

import pytest
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.services.demo import DEMO_EMAIL
from tests.conftest import widen_cli_consoles


@pytest.fixture
def cli(database, monkeypatch, tmp_path):
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CADENZA_CLI_USER", raising=False)
    monkeypatch.delenv("CADENZA_CONFIG", raising=False)
    widen_cli_consoles(monkeypatch)
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert (result.exit_code == 0) is ok, output
        return " ".join(output.split())

    run("db", "upgrade")
    run("demo")
    return run


def test_a_second_user_needs_choosing_once_and_the_error_says_how(cli, tmp_path, monkeypatch):
    assert f"{DEMO_EMAIL} (" in cli("whoami") and "chosen by the only user" in cli("whoami")
    cli("user", "create", "boss@example.com", "--role", "viewer", "--password", "long-secret-1")
    refused = cli("token", "create", ok=False)
    assert "user_not_found" in refused and "cadenza use EMAIL" in refused
    assert "CADENZA_CLI_USER" in refused and "--as EMAIL" in refused

    saved = cli("use", "BOSS@example.com")
    config = tmp_path / "config" / "cadenza" / "config.toml"
    assert config.read_text() == 'user = "boss@example.com"\n'
    assert str(config) in saved
    assert f"boss@example.com (viewer), chosen by {config}" in cli("whoami")
    assert "cdz_" in cli("token", "create", "--name", "laptop")  # no --as from now on

    monkeypatch.setenv("CADENZA_CLI_USER", DEMO_EMAIL)
    assert "chosen by CADENZA_CLI_USER" in cli("whoami")
    assert "boss@example.com (viewer), chosen by --as" in cli("whoami", "--as", "boss@example.com")
    monkeypatch.delenv("CADENZA_CLI_USER")

    cli("use", "--forget")
    assert config.read_text() == ""
    assert "user_not_found" in cli("whoami", ok=False)


def test_unknown_or_broken_choices_are_refused_clearly(cli, tmp_path):
    cli("user", "create", "boss@example.com", "--password", "long-secret-1")
    assert "no user with email nobody@example.com" in cli("use", "nobody@example.com", ok=False)
    config = tmp_path / "config" / "cadenza" / "config.toml"
    assert not config.exists()  # nothing remembered for a user that does not exist
    config.parent.mkdir(parents=True)
    config.write_text('user = "gone@example.com"\n')
    refused = cli("whoami", ok=False)
    assert "no user with email gone@example.com" in refused and str(config) in refused
    config.write_text("user = [unclosed\n")
    assert "cannot read" in cli("whoami", ok=False)
