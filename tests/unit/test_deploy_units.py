"""The deployment samples in deploy/ (docs/deploy.md) hold to the code they start.

What runs everywhere: the systemd units parse, every ExecStart names a `cadenza` command
and options that exist (parsed by the real CLI), the units stop the worker with a signal it
handles, the environment file names real settings only and loads, and the proxies forward
to the address the web unit listens on with a body limit no smaller than Cadenza's. What
needs a tool runs when the tool is there and is skipped with the reason otherwise:
`systemd-analyze verify`, `nginx -t`, `caddy validate`.
"""

from __future__ import annotations

import ast
import configparser
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

import cadenza.cli.worker as worker_cli
from cadenza.cli import app
from cadenza.config import Settings
from cadenza.domain.transport_settings import SMTP_TIMEOUT_SECONDS
from cadenza.web.app import MAX_BODY_BYTES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_EXAMPLE = DEPLOY / "cadenza.env.example"
NGINX = DEPLOY / "nginx" / "cadenza.conf"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
INSTALLED_CADENZA = "/opt/cadenza/venv/bin/cadenza"
# What a deployment cannot go without (docs/deploy.md): PostgreSQL, the public address,
# the key every host shares, and the proxy whose forwarded addresses are believed.
REQUIRED = {"database_url", "public_url", "secret_key", "trusted_proxies"}
# Settings another branch of issue 18 adds (metrics, docs/operations.md): the example
# names them commented out; once config.py has them they are checked like the others.
PENDING = {"metrics_token", "metrics_address"}
ENV_LINE = re.compile(r"^(#\s*)?CADENZA_([A-Z0-9_]+)=(.*)$")


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit's sections as (key, value) lists: keys such as EnvironmentFile= repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            assert current is not None, f"{path.name}: {line!r} before any section"
            current.append((key.strip(), value.strip()))
    return sections


def service(path: Path) -> dict[str, str]:
    """The [Service] settings, the last one winning (as systemd reads single-value keys)."""
    return dict(unit_entries(path)["Service"])


def exec_argv(path: Path) -> list[str]:
    """ExecStart as systemd runs it: ${VAR} from the unit's own Environment= defaults."""
    entries = unit_entries(path)["Service"]
    defaults = dict(
        item.split("=", 1) for key, value in entries if key == "Environment" for item in [value]
    )
    argv = shlex.split(service(path)["ExecStart"])
    return [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], arg) for arg in argv]


def resolve_command(argv: list[str]) -> tuple[list[str], Any, list[str]]:
    """Walks the real CLI down to the command ExecStart names: (its path, it, its args).
    (Typer carries its own click: groups are known by their `commands`, not their class.)"""
    command = typer.main.get_command(app)
    path: list[str] = []
    args = argv[1:]
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        sub = command.commands.get(args[0])
        assert sub is not None, f"`cadenza {' '.join([*path, args[0]])}` is no command"
        path.append(args[0])
        command, args = sub, args[1:]
    return path, command, args


def env_example() -> dict[str, tuple[str, bool]]:
    """Each CADENZA_* name of the example: (value, set rather than commented out)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            found[match.group(2).lower()] = (match.group(3), match.group(1) is None)
    return found


@pytest.fixture
def example_environment(monkeypatch) -> dict[str, str]:
    """The example's set values as the process environment, nothing else of Cadenza's."""
    for name in [n for n in os.environ if n.startswith("CADENZA_")]:
        monkeypatch.delenv(name)
    values = {name: value for name, (value, active) in env_example().items() if active}
    for name, value in values.items():
        monkeypatch.setenv(f"CADENZA_{name.upper()}", value)
    return values


def test_there_is_a_web_unit_and_a_worker_template():
    assert [u.name for u in UNITS] == ["cadenza-web.service", "cadenza-worker@.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_parse_as_ini(unit):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text(), source=unit.name)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    assert unit_entries(unit)["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("cadenza-web.service", ["serve"]), ("cadenza-worker@.service", ["worker"])],
)
def test_exec_start_names_a_real_command_with_real_options(unit, expected):
    argv = exec_argv(DEPLOY / "systemd" / unit)
    assert argv[0] == INSTALLED_CADENZA
    path, command, args = resolve_command(argv)
    assert path == expected
    help_run = CliRunner().invoke(app, [*path, "--help"])
    assert help_run.exit_code == 0, help_run.output
    # Parsed (not run) by the command itself: an unknown option or a bad value raises.
    parsed = command.make_context(" ".join(["cadenza", *path]), list(args))
    if path == ["serve"]:
        assert parsed.params["no_worker"] is True  # the workers are their own units
        assert parsed.params["host"] == "127.0.0.1"  # only the proxy reaches it
    else:
        assert parsed.params["worker_id"] is None  # one id per process: host:pid:random
        assert parsed.params["inbox_interval"] > 0  # replies are read by default


def handled_signals() -> set[str]:
    """The signals `cadenza worker` turns into a clean stop (the tuple its handler loops on;
    tests/integration/test_workers.py drives that stop for real)."""
    tree = ast.parse(Path(worker_cli.__file__).read_text())
    handled = set()
    for loop in (n for n in ast.walk(tree) if isinstance(n, ast.For)):
        calls = [c for c in ast.walk(loop) if isinstance(c, ast.Call)]
        if any(ast.unparse(c.func) == "signal.signal" for c in calls):
            handled |= {e.attr for e in ast.walk(loop.iter) if isinstance(e, ast.Attribute)}
    return handled


def test_the_worker_unit_stops_it_with_a_signal_it_finishes_on():
    settings = service(DEPLOY / "systemd" / "cadenza-worker@.service")
    assert settings["KillSignal"] in handled_signals() == {"SIGTERM", "SIGINT"}
    # Time to finish the emails in flight: a send is several SMTP round trips, each of
    # which may take up to the transport's timeout before it gives up.
    assert int(settings["TimeoutStopSec"]) >= 3 * SMTP_TIMEOUT_SECONDS


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_are_hardened_and_restart_on_failure(unit):
    settings = service(unit)
    entries = unit_entries(unit)["Service"]
    assert settings["User"] == settings["Group"] == "cadenza"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["PrivateTmp"] == "yes"
    assert settings["ProtectHome"] == "yes"
    assert settings["ReadWritePaths"] == settings["WorkingDirectory"] == "/var/lib/cadenza"
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["Restart"] == "on-failure"
    assert ("EnvironmentFile", "/etc/cadenza/cadenza.env") in entries


def test_systemd_analyze_verifies_the_units(tmp_path):
    """`systemd-analyze verify` on copies whose ExecStart is this venv's `cadenza` (verify
    insists that the binary exists). User= is kept: verify does not resolve users."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze not available: the units were checked for syntax and commands "
            "only (Debian: apt-get install systemd, see scripts/install-test-packages)"
        )
    cadenza = Path(sys.executable).with_name("cadenza")
    assert cadenza.exists(), f"{cadenza}: the venv has no cadenza script (make install)"
    for unit in UNITS:
        text = unit.read_text().replace(INSTALLED_CADENZA, str(cadenza))
        (tmp_path / unit.name).write_text(text)
    names = ["cadenza-web.service", "cadenza-worker@1.service"]
    done = subprocess.run(
        [analyze, "verify", *(f"./{n}" for n in names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Unknown keys and bad values are only warned about: any word on our units fails.
    ours = [line for line in output.splitlines() if "cadenza" in line]
    assert ours == [], output


def test_the_environment_example_names_real_settings_only():
    fields = set(Settings.model_fields)
    example = env_example()
    for name, (_, active) in example.items():
        if name in PENDING and name not in fields:
            assert not active, f"CADENZA_{name.upper()} is not a setting yet: keep it commented"
        else:
            assert name in fields, f"CADENZA_{name.upper()} is no setting of config.py"
    assert {name for name, (_, active) in example.items() if active} == REQUIRED


def test_the_environment_example_refuses_to_start_until_the_key_is_set(example_environment):
    assert example_environment["secret_key"] == ""
    with pytest.raises(ValidationError, match="secret_key"):
        Settings()


def test_the_environment_example_loads_once_the_key_is_set(example_environment, monkeypatch):
    monkeypatch.setenv("CADENZA_SECRET_KEY", "k" * 48)
    settings = Settings()
    assert settings.database_url.startswith("postgresql://")  # several workers need it
    assert settings.public_url.startswith("https://")
    # The proxies connect from where the web unit listens: their headers are believed.
    argv = exec_argv(DEPLOY / "systemd" / "cadenza-web.service")
    host = argv[argv.index("--host") + 1]
    assert any(ipaddress.ip_address(host) in net for net in settings.trusted_proxy_networks)


def test_a_refused_secret_key_is_not_echoed(monkeypatch):
    """A unit's start-up error goes to the journal: a key too short must not appear in it."""
    short = "hunter2-but-not-long-enough"
    monkeypatch.setenv("CADENZA_SECRET_KEY", short)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "at least 32 characters" in str(refused.value)
    assert short not in str(refused.value)


def web_listen() -> str:
    argv = exec_argv(DEPLOY / "systemd" / "cadenza-web.service")
    return f"{argv[argv.index('--host') + 1]}:{argv[argv.index('--port') + 1]}"


def size_in_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", text).groups()  # type: ignore[union-attr]
    scale = {"": 1, "k": 1024, "m": 1024**2, "kib": 1024, "mib": 1024**2}[unit.lower()]
    return int(number) * scale


def test_nginx_sample_forwards_to_the_web_unit_and_keeps_metrics_inside():
    text = NGINX.read_text()
    assert re.search(rf"server {re.escape(web_listen())};", text)
    assert "proxy_pass http://cadenza;" in text
    limit = re.search(r"client_max_body_size (\w+);", text).group(1)  # type: ignore[union-attr]
    assert size_in_bytes(limit) >= MAX_BODY_BYTES  # Cadenza's own 413 answers first
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in text
    assert re.search(r"location = /metrics \{\s*return 404;", text)
    assert "listen 443 ssl" in text and "return 301 https://" in text


def test_caddy_sample_forwards_to_the_web_unit_and_keeps_metrics_inside():
    text = CADDYFILE.read_text()
    assert f"reverse_proxy {web_listen()}" in text
    limit = re.search(r"max_size (\w+)", text).group(1)  # type: ignore[union-attr]
    assert size_in_bytes(limit) >= MAX_BODY_BYTES
    assert "@metrics path /metrics /metrics/*" in text and "respond @metrics 404" in text


def test_nginx_accepts_the_sample(tmp_path):
    """`nginx -t` on the sample inside a minimal nginx.conf, with a throw-away certificate
    in place of the sample's paths and every temporary path under tmp_path."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx not available: the sample was checked by reading only")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    write_self_signed(key, cert)
    sample = (
        NGINX.read_text()
        .replace("/etc/ssl/cadenza/fullchain.pem", str(cert))
        .replace("/etc/ssl/cadenza/privkey.pem", str(key))
    )
    (tmp_path / "cadenza.conf").write_text(sample)
    temps = "".join(
        f"  {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n{temps}  access_log off;\n  include {tmp_path / 'cadenza.conf'};\n}}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_caddy_accepts_the_sample(tmp_path):
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy not available: the sample was checked by reading only")
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **home},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid configuration" in done.stdout + done.stderr


def write_self_signed(key_path: Path, cert_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cadenza.corp.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
