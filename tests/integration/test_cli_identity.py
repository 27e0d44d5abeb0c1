"""Who the CLI acts as once there are several users (issue 11 item 6)."""

import pytest

from cadenza.services.demo import DEMO_EMAIL


@pytest.fixture
def cli(cli):
    """The shared runner (tests/integration/conftest.py) on the demo's data, its output on
    one line: the tests read phrases that the table layout may wrap."""
    cli("db", "upgrade")
    cli("demo")
    return lambda *args, ok=True: " ".join(cli(*args, ok=ok).split())


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
