"""Provisioning and revocation: what one device needs to join a secured site, and taking it away.

``provision`` makes, in one directory, everything a device is given: its broker password (a
random secret, in a file of its own), the repository's ``root.json`` (its trust anchor), the
broker's CA and a ready ``agent.yaml`` that points at them; and it adds the device's entry to the
broker's password file. ``revoke`` removes that entry. Mosquitto reads its password file at start
and on reload (``systemctl reload mosquitto``, SIGHUP), and on reload it disconnects clients whose
credentials no longer pass.

Why the password file is written here rather than by ``mosquitto_passwd``: the operator host
need not have Mosquitto installed, and the format is small and documented by its source
(``$7$`` = PBKDF2-HMAC-SHA512: ``user:$7$ITERATIONS$base64(salt)$base64(hash)``, 12-byte salt,
64-byte hash; ``tests/unit/fleet/test_provision.py`` checks an entry ``mosquitto_passwd`` made).
A credential is never replaced silently: provisioning a device that has one is an error unless
``rotate`` says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_agent._fs import write_atomically
from edge_agent.config import AgentConfig, validate
from edge_agent.errors import ConfigError
from edge_agent.names import DEVICE_ID

PBKDF2_ITERATIONS = 101
"""Mosquitto 2.0's default. The passwords made here are 256 random bits, so the iteration count
protects nothing that brute force could reach; a higher one only costs the broker per login."""
SALT_BYTES = 12
SERVICE_USERS = frozenset({"registry", "monitor", "operator"})
"""The broker users of the operator services (deploy/mosquitto.acl gives each its own rights):
a device named after one would log in with that service's rights."""


class ProvisionError(ConfigError):
    """A device cannot be provisioned or revoked as asked (the message says what to do)."""


def password_entry(
    user: str, password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """One line of a Mosquitto password file (``$7$``, PBKDF2-HMAC-SHA512), without newline."""
    if ":" in user or "\n" in user:
        raise ProvisionError(f"user name {user!r} cannot be stored in a password file")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"{user}:$7${iterations}${encoded[0]}${encoded[1]}"


def check_password(entry: str, password: str) -> bool:
    """Whether ``password`` matches a ``$7$`` entry (what the broker does at login)."""
    _user, _, hashed = entry.partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    iterations, salt, expected = int(parts[2]), base64.b64decode(parts[3]), parts[4]
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


class PasswordFile:
    """A Mosquitto password file: ordered ``user:hash`` lines, rewritten atomically.

    Lines it does not understand (comments, blank lines) are kept as they are.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = path.read_text().splitlines() if path.exists() else []

    def users(self) -> list[str]:
        """The users that have an entry."""
        return [line.split(":", 1)[0] for line in self.lines if ":" in line]

    def set(self, user: str, entry: str) -> None:
        """Add ``user``'s entry, or replace the one it has."""
        kept = [line for line in self.lines if line.split(":", 1)[0] != user]
        self.lines = [*kept, entry]

    def remove(self, user: str) -> None:
        """Drop ``user``'s entry (ProvisionError when there is none)."""
        if user not in self.users():
            raise ProvisionError(f"{user} has no entry in {self.path}: nothing to revoke")
        self.lines = [line for line in self.lines if line.split(":", 1)[0] != user]

    def save(self) -> None:
        """Replace the file atomically, keeping its permission bits and owner.

        The broker reads it as its own user: a rewrite that changed the owner or mode to
        root-only would lock every client out at the next reload.
        """
        try:
            stat = self.path.stat()
            mode, owner = stat.st_mode & 0o777, (stat.st_uid, stat.st_gid)
        except FileNotFoundError:
            mode, owner = 0o640, None
        data = "".join(f"{line}\n" for line in self.lines).encode()
        write_atomically(self.path, data, mode=mode)
        if owner is not None and (os.geteuid() == 0) and owner != (0, 0):
            os.chown(self.path, *owner)


@dataclass(frozen=True)
class ProvisionRequest:
    """What ``edge-agent fleet provision`` was asked for."""

    device_id: str
    out_dir: Path
    """Where the device's directory is made (``out_dir/DEVICE_ID``)."""
    passwd: Path
    """The broker's password file the device's entry goes into."""
    root_json: Path
    broker_url: str
    ca_file: Path | None = None
    group: str | None = None
    models: tuple[str, ...] = ()
    device: str = "auto"
    install_dir: Path = Path("/etc/edge-agent")
    """Where the directory's files will be on the device (the paths agent.yaml names)."""
    rotate: bool = False


def agent_config(request: ProvisionRequest) -> dict[str, Any]:
    """The ``agent.yaml`` a provisioned device runs with (validated before it is written)."""
    on_device = request.install_dir
    broker: dict[str, Any] = {
        "url": request.broker_url,
        "username": request.device_id,
        "password_file": str(on_device / "broker-password"),
    }
    if request.ca_file is not None:
        broker["ca_file"] = str(on_device / "ca.crt")
    data: dict[str, Any] = {
        "device_id": request.device_id,
        "device": request.device,
        "broker": broker,
    }
    if request.models:
        registry: dict[str, Any] = {
            "root": str(on_device / "root.json"),
            "models": list(request.models),
        }
        if request.group:
            registry["group"] = request.group
        data["registry"] = registry
    validate(AgentConfig, data, source=f"the agent config made for {request.device_id}")
    return data


def provision(request: ProvisionRequest) -> Path:
    """Make the device's directory and add its broker credential; returns the directory.

    Raises:
        ProvisionError: the device already has a credential (in the password file or its
            directory) and ``rotate`` is not set, or an input file is missing.
    """
    device_id = _device_user(request.device_id)
    directory = request.out_dir / device_id
    passwords = PasswordFile(request.passwd)
    if not request.rotate:
        if device_id in passwords.users():
            raise ProvisionError(
                f"{device_id} already has a broker credential in {request.passwd}; "
                "--rotate replaces it (the device then needs the new password file)"
            )
        if (directory / "broker-password").exists():
            raise ProvisionError(
                f"{directory} already holds a credential for {device_id}; --rotate replaces it"
            )
    for given in (request.root_json, request.ca_file):
        if given is not None and not given.is_file():
            raise ProvisionError(f"{given}: no such file")
    config = agent_config(request)
    password = secrets.token_hex(32)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)  # it holds a secret until it is copied onto the device
    write_atomically(directory / "broker-password", f"{password}\n".encode(), mode=0o600)
    shutil.copyfile(request.root_json, directory / "root.json")
    if request.ca_file is not None:
        shutil.copyfile(request.ca_file, directory / "ca.crt")
    write_atomically(
        directory / "agent.yaml", yaml.safe_dump(config, sort_keys=False).encode(), mode=0o640
    )
    passwords.set(device_id, password_entry(device_id, password))
    passwords.save()
    return directory


def _device_user(device_id: str) -> str:
    DEVICE_ID.check(device_id, "DEVICE_ID", ProvisionError)
    if device_id in SERVICE_USERS:
        raise ProvisionError(
            f"{device_id!r} is the broker user of a service (deploy/mosquitto.acl): a device "
            "with that id would log in with the service's rights; choose another device id"
        )
    return device_id


def revoke(device_id: str, passwd: Path) -> None:
    """Remove the device's broker credential (effective when the broker reloads).

    Raises:
        ProvisionError: the device has no entry.
    """
    passwords = PasswordFile(passwd)
    passwords.remove(_device_user(device_id))
    passwords.save()
