"""The trust anchor: provisioned only into an empty directory, raised only along a verified chain.

No broker here: a real operator repository signs real roots, and ngclient's ``Updater`` reads it
through a fetcher that serves the repository's files (injected, nothing patched).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import FetcherInterface, UpdaterConfig

from edge_agent.errors import UpdateError
from edge_agent.trust.device.anchor import ANCHOR, advance, provision, trusted_root
from edge_agent.trust.device.durable import DurableUpdater
from edge_agent.trust.operator.keys import generate_key
from edge_agent.trust.operator.repository import OperatorRepository, RoleKeys


class RepositoryFetcher(FetcherInterface):
    """Serves ``repo/metadata/*`` for ``file:///metadata/...`` URLs (404 for the rest)."""

    def __init__(self, metadata_dir: Path) -> None:
        self.metadata_dir = metadata_dir

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.metadata_dir / url.rsplit("/", 1)[-1]
        if not path.is_file():
            raise DownloadHTTPError(f"{url}: not found", 404)
        return iter([path.read_bytes()])


@pytest.fixture
def repo(tmp_path: Path) -> OperatorRepository:
    return OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")


def _factory(repo: OperatorRepository) -> Path:
    return repo.metadata_dir / "1.root.json"


def _version(path: Path) -> int:
    return int(json.loads(path.read_bytes())["signed"]["version"])


def _refresh(repo: OperatorRepository, metadata_dir: Path) -> None:
    try:
        updater = DurableUpdater(
            str(metadata_dir),
            "file:///metadata/",
            fetcher=RepositoryFetcher(repo.metadata_dir),
            config=UpdaterConfig(),
            bootstrap=trusted_root(metadata_dir),
        )
        updater.refresh()
    finally:
        advance(metadata_dir)


def test_provision_installs_the_factory_root_only_into_an_empty_directory(
    tmp_path: Path, repo: OperatorRepository
):
    device = tmp_path / "device"
    provision(device, _factory(repo))
    assert (device / ANCHOR).read_bytes() == _factory(repo).read_bytes()
    assert (device / "root.json").read_bytes() == _factory(repo).read_bytes()
    assert oct((device / ANCHOR).stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    "left",
    ["anchor", "root_history", "dangling-root-link", "timestamp"],
)
def test_provision_never_overwrites_a_newer_or_damaged_trust_state_with_the_factory_root(
    tmp_path: Path, repo: OperatorRepository, left: str
):
    """Regression: provision() reinstalled the factory root when root.json was missing."""
    device = tmp_path / "device"
    provision(device, _factory(repo))
    repo.rotate_key("root")
    _refresh(repo, device)
    assert _version(device / ANCHOR) == 2
    (device / "root.json").unlink()
    kept = {
        "anchor": [],
        "root_history": [ANCHOR],
        "dangling-root-link": [ANCHOR, "root_history/1.root.json", "root_history/2.root.json"],
        "timestamp": [ANCHOR, "root_history/1.root.json", "root_history/2.root.json"],
    }[left]
    for name in kept:
        (device / name).unlink()
    if left == "dangling-root-link":
        os.symlink("root_history/2.root.json", device / "root.json")
    before = sorted(str(p.relative_to(device)) for p in device.rglob("*"))
    provision(device, _factory(repo))
    assert sorted(str(p.relative_to(device)) for p in device.rglob("*")) == before


def test_the_anchor_follows_a_chain_of_rotations_and_never_goes_back(
    tmp_path: Path, repo: OperatorRepository
):
    device = tmp_path / "device"
    provision(device, _factory(repo))
    repo.rotate_key("root", RoleKeys(3, 2))
    repo.rotate_key("root", RoleKeys(1, 1))
    _refresh(repo, device)
    assert _version(device / ANCHOR) == 3
    assert (device / ANCHOR).read_bytes() == (repo.metadata_dir / "3.root.json").read_bytes()
    assert not (device / "root.json").is_symlink()
    assert advance(device) == 3  # nothing newer: unchanged


def test_the_anchor_is_not_raised_to_a_root_the_old_keys_did_not_sign(
    tmp_path: Path, repo: OperatorRepository
):
    """A root_history file ngclient never verified (planted, or half-written) is not trusted."""
    device = tmp_path / "device"
    provision(device, _factory(repo))
    _refresh(repo, device)
    forged = Metadata[Root].from_file(str(_factory(repo)))
    intruder = generate_key(tmp_path / "intruder", "root")
    for keyid in list(forged.signed.roles["root"].keyids):
        forged.signed.revoke_key(keyid, "root")
    forged.signed.add_key(intruder.public_key, "root")
    forged.signed.version = 2
    forged.signatures.clear()
    forged.sign(intruder.signer)  # self-signed, but not by the trusted root's key
    (device / "root_history" / "2.root.json").write_bytes(forged.to_bytes())
    assert advance(device) == 1
    assert _version(device / ANCHOR) == 1


def test_a_damaged_anchor_is_recovered_from_the_newest_intact_root(
    tmp_path: Path, repo: OperatorRepository
):
    device = tmp_path / "device"
    provision(device, _factory(repo))
    repo.rotate_key("root")
    _refresh(repo, device)
    (device / ANCHOR).write_bytes(b'{"signed": ')  # torn by something other than our writes
    assert trusted_root(device) == (repo.metadata_dir / "2.root.json").read_bytes()
    assert _version(device / ANCHOR) == 2


def test_an_unprovisioned_device_is_told_to_provision(tmp_path: Path):
    with pytest.raises(UpdateError, match="provision the device"):
        trusted_root(tmp_path / "device")


def test_provision_refuses_a_file_that_is_not_self_signed_root(
    tmp_path: Path, repo: OperatorRepository
):
    with pytest.raises(UpdateError, match="holds timestamp metadata, not root"):
        provision(tmp_path / "device", repo.metadata_dir / "timestamp.json")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(UpdateError, match=r"empty \(0 bytes\)"):
        provision(tmp_path / "device", empty)
    assert not (tmp_path / "device" / ANCHOR).exists()


def test_every_file_ngclient_persists_is_fsynced_with_its_directory(
    tmp_path: Path, repo: OperatorRepository, monkeypatch: pytest.MonkeyPatch
):
    """Regression: metadata (root_history/N.root.json too) was written without fsync, so a
    power cut could leave zero-length files that a later refresh trusted or tripped over."""
    device = tmp_path / "device"
    provision(device, _factory(repo))
    repo.rotate_key("root")
    synced: set[int] = set()
    real_fsync = os.fsync

    def spy(fd: int) -> None:  # the real fsync, recording which inode it flushed
        synced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    _refresh(repo, device)
    monkeypatch.undo()
    for name in ("root_history/2.root.json", "root.json", "timestamp.json", "snapshot.json",
                 "targets.json", ANCHOR):  # fmt: skip
        path = device / name
        assert path.is_file() and not path.is_symlink(), name
        assert path.stat().st_ino in synced, name
    assert device.stat().st_ino in synced
    assert (device / "root_history").stat().st_ino in synced
    assert not [p for p in device.rglob("*") if p.name.startswith("tmp")]  # ngclient's temp names
