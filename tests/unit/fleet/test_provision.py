"""Provisioning writes Mosquitto's own password format, never replaces a credential silently,
and makes an agent.yaml that validates."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edge_agent.config import AgentConfig, validate
from edge_agent.fleet.provision import (
    PasswordFile,
    ProvisionError,
    ProvisionRequest,
    check_password,
    password_entry,
    provision,
    revoke,
)

# made by `mosquitto_passwd -b FILE u secret` (Mosquitto 2.0.11)
MOSQUITTO_ENTRY = (
    "u:$7$101$+spgEAHmva3RoKPq$E3LnkMOByfnV86vpJDy1ywS/F3Lp5EmoJHa7oOfssNZ8TvsAczPKFnZwAPm6vI"
    "waaacKavUO80igFuaV5zhUdA=="
)


def test_entries_are_mosquittos_pbkdf2_sha512_format():
    salt = base64.b64decode("+spgEAHmva3RoKPq")
    assert password_entry("u", "secret", salt=salt) == MOSQUITTO_ENTRY
    assert check_password(MOSQUITTO_ENTRY, "secret")
    assert not check_password(MOSQUITTO_ENTRY, "Secret")


def test_an_entry_checks_with_mosquitto_passwd_too(tmp_path: Path):
    """The other direction: a file mosquitto_passwd made and one we made hold the same kind."""
    if shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto_passwd is not installed (apt-get install mosquitto)")
    theirs = tmp_path / "passwd"
    theirs.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(theirs), "cam-1", "pw"], check=True)
    (line,) = theirs.read_text().splitlines()
    assert check_password(line, "pw")
    assert password_entry("cam-1", "pw").split("$")[:3] == line.split("$")[:3]


def _request(tmp_path: Path, **changes: object) -> ProvisionRequest:
    root = tmp_path / "root.json"
    root.write_text("{}")
    ca = tmp_path / "ca.crt"
    ca.write_text("CA")
    fields: dict[str, object] = {
        "device_id": "cam-07",
        "out_dir": tmp_path / "out",
        "passwd": tmp_path / "passwd",
        "root_json": root,
        "broker_url": "mqtts://broker.example:8883",
        "ca_file": ca,
        "group": "lab",
        "models": ("digits",),
    }
    fields.update(changes)
    return ProvisionRequest(**fields)  # type: ignore[arg-type]


def test_provision_makes_the_devices_directory_and_its_entry(tmp_path: Path):
    (tmp_path / "passwd").write_text("registry:$7$101$x$y\n")
    directory = provision(_request(tmp_path))
    assert sorted(p.name for p in directory.iterdir()) == [
        "agent.yaml",
        "broker-password",
        "ca.crt",
        "root.json",
    ]
    assert (directory / "broker-password").stat().st_mode & 0o077 == 0
    password = (directory / "broker-password").read_text().strip()
    lines = (tmp_path / "passwd").read_text().splitlines()
    assert lines[0] == "registry:$7$101$x$y" and check_password(lines[1], password)
    config = validate(
        AgentConfig, yaml.safe_load((directory / "agent.yaml").read_text()), source="t"
    )
    assert config.device_id == "cam-07" and config.broker is not None
    assert config.broker.username == "cam-07" and config.broker.tls
    assert str(config.broker.password_file) == "/etc/edge-agent/broker-password"
    assert config.registry is not None and config.registry.group == "lab"


def test_never_silently_replaces_a_devices_credential(tmp_path: Path):
    first = provision(_request(tmp_path))
    before = (tmp_path / "passwd").read_text()
    with pytest.raises(ProvisionError, match="--rotate"):
        provision(_request(tmp_path))
    assert (tmp_path / "passwd").read_text() == before
    (first / "broker-password").unlink()
    with pytest.raises(ProvisionError, match="already has a broker credential"):
        provision(_request(tmp_path))  # the password file still has it
    provision(_request(tmp_path, rotate=True))
    lines = (tmp_path / "passwd").read_text().splitlines()
    assert len(lines) == 1 and lines[0] != before.strip()
    assert check_password(lines[0], (first / "broker-password").read_text().strip())


def test_refuses_a_device_named_after_a_service_user(tmp_path: Path):
    for name in ("operator", "registry", "monitor"):
        with pytest.raises(ProvisionError):
            provision(_request(tmp_path, device_id=name))
    assert not (tmp_path / "passwd").exists()


def test_revoke_removes_only_that_device_and_keeps_the_file_mode(tmp_path: Path):
    provision(_request(tmp_path))
    provision(_request(tmp_path, device_id="cam-08"))
    (tmp_path / "passwd").chmod(0o644)
    revoke("cam-07", tmp_path / "passwd")
    assert PasswordFile(tmp_path / "passwd").users() == ["cam-08"]
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ProvisionError, match="nothing to revoke"):
        revoke("cam-07", tmp_path / "passwd")
