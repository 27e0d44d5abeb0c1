"""A real IMAP server for tests: Debian's dovecot, configured and started in a temporary
directory on a free loopback port, with one test user and a Maildir, stopped afterwards.
Started once, it can hand out further users (`add_account`), each with an empty Maildir of
its own, so tests share one server without seeing each other's mail.

Nothing of the system's dovecot configuration is used. As root, mail and login
processes run as the package's unprivileged `dovecot`/`dovenull` users; as anyone else,
as the current user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import trustme
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_DEADLINE_SECONDS = 20.0
INSTALL_HINT = (
    "dovecot is not installed: apt-get install -y --no-install-recommends dovecot-imapd "
    "(.ci/run does this)"
)

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
# A refused login answers at once (dovecot waits 2 s by default): the tests of wrong
# passwords need the refusal, not the brake.
auth_failure_delay = 0
auth_mechanisms = plain login{oauth_mechanisms}
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = 0
mail_location = maildir:{root}/mail/%u
{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
# No authentication penalty (anvil delays every login from an address after a refused
# one, 2 s doubling to 15 s): the tests of wrong passwords would brake the tests after
# them on the same server.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


# SASL XOAUTH2/OAUTHBEARER checked by asking the authorization server (RFC 7662
# introspection, POST with the client's credentials in the URL): a token is good while
# the server says it is active, for the user it names.
OAUTH_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""
OAUTH_CONFIG = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Account:
    """One user's mail on a running Dovecot: what a test logs in with and delivers to."""

    def __init__(self, server: Dovecot, user: str, password: str) -> None:
        self.server = server
        self.host, self.port = server.host, server.port
        self.user, self.password = user, password

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX", msg_time=None) -> None:
        with self.client() as client:
            client.append(folder, raw, msg_time=msg_time)

    def flags(self, folder: str = "INBOX") -> dict[bytes, tuple[bytes, ...]]:
        """Flags of every message, keyed by its Message-ID header."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return {d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].strip(): d[b"FLAGS"] for d in data.values()}

    def log(self) -> str:
        return self.server.log()


class Dovecot:
    def __init__(
        self,
        user: str = "rep@example.com",
        password: str = "imap-pw-81",
        *,
        tls: bool = False,
        oauth2_introspection_url: str | None = None,
    ):
        """With `tls`, also IMAPS on `tls_port` and STARTTLS on `port`, with a certificate
        from a test CA (`ssl_context()` trusts it). With `oauth2_introspection_url`
        (`http://client:secret@host:port/introspect`), also SASL XOAUTH2 with a token
        that URL says is active (dovecot's oauth2 passdb)."""
        self.oauth2_introspection_url = oauth2_introspection_url
        # Its own directory, not pytest's: those are private to root, and dovecot's mail
        # processes run as the unprivileged `dovecot` user.
        self.root = Path(tempfile.mkdtemp(prefix="cadenza-dovecot-"))
        self.root.chmod(0o755)
        self.user, self.password = user, password
        self.host, self.port = "127.0.0.1", free_port()
        self.tls_port = free_port() if tls else 0
        self.ca = trustme.CA() if tls else None
        self.process: subprocess.Popen | None = None
        self._users = {user: password}
        self._users_lock = threading.Lock()

    def __enter__(self) -> Dovecot:
        if not os.path.exists(DOVECOT):
            raise RuntimeError(INSTALL_HINT)
        if os.geteuid() == 0:
            internal, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
        else:
            internal = login = pwd.getpwuid(os.geteuid())
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_user(self.user, self.password)
        ssl_setting = "ssl = no"
        if self.ca is not None:
            leaf = self.ca.issue_cert(self.host)
            leaf.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
            leaf.private_key_pem.write_to_path(str(self.root / "key.pem"))
            ssl_setting = (
                f"ssl = yes\nssl_cert = <{self.root}/cert.pem\nssl_key = <{self.root}/key.pem"
            )
        oauth_passdb = oauth_mechanisms = ""
        if self.oauth2_introspection_url:
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                OAUTH_CONFIG.format(url=self.oauth2_introspection_url)
            )
            oauth_passdb = OAUTH_PASSDB.format(root=self.root)
            oauth_mechanisms = " xoauth2 oauthbearer"
        config = self.root / "dovecot.conf"
        config.write_text(
            CONFIG.format(
                root=self.root,
                oauth_passdb=oauth_passdb,
                oauth_mechanisms=oauth_mechanisms,
                ssl=ssl_setting,
                port=self.port,
                tls_port=self.tls_port,
                internal=internal.pw_name,
                internal_group=internal.pw_name,
                login=login.pw_name,
                uid=internal.pw_uid,
                gid=internal.pw_gid,
            )
        )
        if os.geteuid() == 0:
            for path in (self.root / "mail", self.root / "home"):
                os.chown(path, internal.pw_uid, internal.pw_gid)
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as conn:
                    if conn.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)  # polling a starting process, with a deadline
        raise RuntimeError(f"dovecot did not listen on port {self.port}: {self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_user(self, user: str, password: str) -> None:
        """A passwd-file per user (the passdb's path names the user): a user added while
        the server runs is known at its first login, where one shared file is re-read
        at most once a second and its new users refused until then."""
        folder = self.root / "users"
        folder.mkdir(mode=0o755, exist_ok=True)
        folder.chmod(0o755)  # whatever the umask: dovecot's auth process reads it
        staged = folder / f".{user}.new"
        staged.write_text(f"{user}:{{PLAIN}}{password}\n")
        staged.replace(folder / user)

    def add_account(self, user: str, password: str) -> Account:
        """A new user with an empty Maildir on this running server."""
        with self._users_lock:
            assert user not in self._users, f"{user} already exists"
            self._users[user] = password
            self._write_user(user, password)
        return Account(self, user, password)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def _first_account(self) -> Account:
        return Account(self, self.user, self.password)

    def client(self) -> IMAPClient:
        return self._first_account().client()

    def append(self, raw: bytes, folder: str = "INBOX", msg_time=None) -> None:
        self._first_account().append(raw, folder, msg_time)

    def flags(self, folder: str = "INBOX") -> dict[bytes, tuple[bytes, ...]]:
        """Flags of every message, keyed by its Message-ID header."""
        return self._first_account().flags(folder)
