"""Mosquitto running the shipped deploy/mosquitto.conf and deploy/mosquitto.acl, on this machine.

What ``edge-agent demo`` runs, and what the secured-site tests run: the deployment's own broker
config with only paths and ports rewritten (and ``log_dest syslog`` becoming a log file, which is
a path). Everything else, no anonymous clients, one password per user, the client id bound to the
user, TLS and the ACL that confines each device to its own topics, is what a site runs.

Start-up makes what a site's operator makes once (docs/deploy.md): a CA and the broker's
certificate signed by it (:mod:`edge_agent.fleet.tls`, throwaway, valid for a month), and a
password-file entry per user (:func:`edge_agent.fleet.provision.password_entry`, the same
``$7$`` entries ``fleet provision`` writes). Each client's password is in a file of its own
(``clients_dir/USER.pw``, 0600) that its ``BrokerSettings.password_file`` names.

Mosquitto started as root drops to the ``mosquitto`` user before it reads its certificates,
password file and ACL: as root the broker's directory is handed to that user and must be
reachable by it (:func:`broker_root` makes one under the system's temp dir then).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent._fs import write_atomically
from edge_agent.config import BrokerSettings
from edge_agent.demo.broker import free_port, mosquitto_binary, stop_process, wait_for_port
from edge_agent.errors import ConfigError, TransportError
from edge_agent.fleet.provision import PasswordFile, password_entry
from edge_agent.fleet.tls import Authority, make_authority

_PACKAGE = Path(__file__).resolve().parent.parent
_DEPLOY_CANDIDATES = (_PACKAGE / "_deploy", _PACKAGE.parent / "deploy")
REWRITTEN_LINES = 9
"""Lines of deploy/mosquitto.conf that :func:`shipped_config` changes: the three TLS files, the
password file, the ACL, the persistence location, the log destination and the two ports."""


def deploy_dir() -> Path:
    """Where the shipped broker config is (installed wheel or source checkout)."""
    for candidate in _DEPLOY_CANDIDATES:
        if (candidate / "mosquitto.conf").is_file():
            return candidate
    raise ConfigError(
        "deploy/mosquitto.conf is missing: reinstall edge-agent or run from a checkout"
    )


def shipped_config(root: Path, plain_port: int, tls_port: int) -> str:
    """deploy/mosquitto.conf with its paths under ``root`` and its ports replaced.

    Raises:
        ConfigError: the shipped file changed shape (a path or a port this does not know), so
            running it here would no longer be running what a site runs.
    """
    text = (deploy_dir() / "mosquitto.conf").read_text()
    rewritten = text.replace("/etc/mosquitto/", f"{root}/etc/")
    rewritten = rewritten.replace("/var/lib/mosquitto/", f"{root}/var/")
    rewritten = rewritten.replace("log_dest syslog", f"log_dest file {root}/var/mosquitto.log")
    rewritten = re.sub(r"^listener 1883 ", f"listener {plain_port} ", rewritten, flags=re.M)
    rewritten = re.sub(r"^listener 8883$", f"listener {tls_port}", rewritten, flags=re.M)
    lines = zip(text.splitlines(), rewritten.splitlines(), strict=True)
    changed = [(a, b) for a, b in lines if a != b and not a.startswith("#")]
    if len(changed) != REWRITTEN_LINES:
        raise ConfigError(
            f"deploy/mosquitto.conf: expected to rewrite {REWRITTEN_LINES} lines (paths and "
            f"ports), rewrote {len(changed)}: {changed}; update shipped_config with it"
        )
    return rewritten


def broker_root(work: Path) -> Path:
    """A directory for the broker's files: ``work/broker``, or as root a fresh one in /tmp.

    As root the broker reads its files as ``mosquitto``, which cannot pass a 0700 directory
    above ``work`` (a temporary directory, pytest's ``tmp_path``); the system's temp dir it can.
    """
    if os.geteuid() != 0:
        return work / "broker"
    root = Path(tempfile.mkdtemp(prefix="edge-demo-broker-"))
    root.chmod(0o711)
    return root


@dataclass
class SecuredMosquitto:
    """The shipped broker config in ``root`` (``etc/``, ``var/``), its CA, and its users.

    ``add_user`` before ``start`` (or ``reload`` after); ``settings``/``options`` say how a
    user's client reaches the TLS listener.
    """

    root: Path
    authority: Authority
    plain_port: int
    tls_port: int
    clients_dir: Path
    """Where each user's password file is written (``USER.pw``)."""
    process: subprocess.Popen[bytes] | None = None
    passwords: dict[str, Path] = field(default_factory=dict)
    host: str = "127.0.0.1"
    kind: str = "mosquitto"

    @property
    def passwd(self) -> Path:
        """The broker's password file."""
        return self.root / "etc" / "passwd"

    @property
    def log_path(self) -> Path:
        """The broker's log (connections, refusals)."""
        return self.root / "var" / "mosquitto.log"

    def log(self) -> str:
        """The broker's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def tls_url(self) -> str:
        """``mqtts://127.0.0.1:PORT``: the listener devices and services use."""
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def plain_url(self) -> str:
        """``mqtt://127.0.0.1:PORT``: the loopback listener (passwords still required)."""
        return f"mqtt://{self.host}:{self.plain_port}"

    @property
    def url(self) -> str:
        """The URL clients are given: the TLS listener."""
        return self.tls_url

    @property
    def port(self) -> int:
        """The TLS listener's port (the one clients are given)."""
        return self.tls_port

    def add_user(self, user: str) -> Path:
        """A broker user with a random password; returns the password file a client reads."""
        password = secrets.token_hex(32)
        entries = PasswordFile(self.passwd)
        entries.set(user, password_entry(user, password))
        entries.save()
        self.clients_dir.mkdir(parents=True, exist_ok=True)
        self.clients_dir.chmod(0o700)
        secret = self.clients_dir / f"{user}.pw"
        write_atomically(secret, f"{password}\n".encode(), mode=0o600, durable=False)
        self.passwords[user] = secret
        return secret

    def settings(self, user: str | None, ca: Path | None = None) -> BrokerSettings:
        """How ``user`` reaches the TLS listener (``ca``: another CA to trust instead)."""
        return BrokerSettings(
            url=self.tls_url,
            username=user,
            password_file=self.passwords[user] if user else None,
            ca_file=ca or self.authority.cert,
        )

    def options(self, user: str) -> list[str]:
        """The same as command-line options (any command that talks to a broker takes them)."""
        return [
            "--broker",
            self.tls_url,
            "--broker-username",
            user,
            "--broker-password-file",
            str(self.passwords[user]),
            "--broker-ca-file",
            str(self.authority.cert),
        ]

    def start(self) -> None:
        """Start Mosquitto; returns once both listeners accept connections.

        Raises:
            TransportError: Mosquitto is missing, or exited or stayed deaf while starting
                (the message carries its log).
        """
        binary = mosquitto_binary()
        if binary is None:
            raise TransportError("mosquitto is not installed: apt-get install mosquitto")
        config = self.root / "mosquitto.conf"
        config.write_text(shipped_config(self.root, self.plain_port, self.tls_port))
        stderr_path = self.root / "var" / "stderr.log"
        with stderr_path.open("ab") as stderr:  # the child keeps its own descriptor
            # A session of its own: a terminal's Ctrl-C goes to the whole foreground process
            # group, and a broker that died first left every client reconnecting while the
            # demo stopped in order. The owner stops it (``stop``), last.
            self.process = subprocess.Popen(
                [binary, "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        process = self.process
        try:
            for port in (self.plain_port, self.tls_port):
                wait_for_port(port, lambda: process.poll() is None, 10, "mosquitto")
        except TransportError:
            self.stop()
            raise TransportError(
                f"mosquitto failed to start: {self.log()[-1000:]} "
                f"{stderr_path.read_text(errors='replace')[-1000:]}"
            ) from None

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads the password file and the ACL (``systemctl reload``)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        stop_process(self.process)


def prepare_secured_mosquitto(
    root: Path, tls_dir: Path, clients_dir: Path, users: tuple[str, ...] = ()
) -> SecuredMosquitto:
    """A fresh CA in ``tls_dir``, the broker's files in ``root``, ``users`` added; not started.

    ``tls_dir/ca.crt`` is the CA clients pin; its key stays beside it (throwaway, like the
    rest). The broker gets a copy of the CA, its certificate (for ``localhost`` and
    127.0.0.1), an empty password file and the shipped ACL.
    """
    etc, var, certs = root / "etc", root / "var", root / "etc" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    var.mkdir(exist_ok=True)
    (var / "mosquitto.db").unlink(missing_ok=True)  # a fresh site, even in a reused folder
    authority = make_authority(tls_dir, "ca")
    shutil.copyfile(authority.cert, certs / "ca.crt")
    authority.issue(certs, "broker", ["localhost", "127.0.0.1"])
    write_atomically(etc / "passwd", b"", mode=0o600, durable=False)
    shutil.copyfile(deploy_dir() / "mosquitto.acl", etc / "edge-agent.acl")
    if os.geteuid() == 0:
        _hand_to_broker_user(root)
    broker = SecuredMosquitto(root, authority, free_port(), free_port(), clients_dir)
    for user in users:
        broker.add_user(user)
    return broker


def _hand_to_broker_user(root: Path) -> None:
    """Give the broker's files to the user Mosquitto drops to when started as root.

    The password file keeps that owner when it is rewritten (``PasswordFile.save``).
    """
    for name in ("mosquitto", "nobody"):  # Mosquitto's own order
        try:
            account = pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        return
    for path in (root, *root.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)
