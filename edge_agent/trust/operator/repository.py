"""The operator's TUF repository: metadata for root, targets, snapshot, timestamp and rollouts.

Layout of a repository directory (what `edge-agent registry serve` publishes)::

    REPO/
      repo.json        how long each role's metadata stays valid (days)
      metadata/        1.root.json, 2.root.json, N.targets.json, N.rollouts.json,
                       N.snapshot.json, timestamp.json (+ unversioned copies of the current ones)
      targets/         models/<name>/<release>/<sha256>.<file>  (hash-prefixed target files)
    KEYS/              <role>-<keyid>.pem, 0600; root and targets belong offline

Consistent snapshots are on, so every file but ``timestamp.json`` is immutable once written and a
device always reads one coherent repository state while the operator publishes the next one.
Every change is written in dependency order (targets, snapshot, then timestamp last), each file
atomically, under a lock file, so a crash or a concurrent registry never sees a half state.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from edge_agent._fs import write_atomically
from edge_agent.errors import UpdateError
from edge_agent.trust.operator.keys import KeyFile, generate_key, load_keys, retire_key

ROLLOUTS = "rollouts"
"""The delegated role that signs rollout plans (``rollouts/*``); its key may live online."""
TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
ALL_ROLES = (*TOP_ROLES, ROLLOUTS)
OFFLINE_ROLES = (Root.type, Targets.type)
DEFAULT_EXPIRY_DAYS = {
    Root.type: 365,
    Targets.type: 90,
    ROLLOUTS: 7,
    Snapshot.type: 7,
    Timestamp.type: 1,
}
SETTINGS_FILE = "repo.json"

S = TypeVar("S", Root, Targets, Snapshot, Timestamp)


def utc_now() -> datetime:
    """Now, in UTC, to the second (TUF's resolution)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class RoleKeys:
    """How many keys a role has and how many must sign."""

    count: int = 1
    threshold: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.count:
            raise UpdateError(
                f"a threshold of {self.threshold} with {self.count} key(s) cannot be met: "
                "use 1 <= threshold <= count"
            )


@dataclass(frozen=True)
class RepoSettings:
    """Per-repository settings kept in ``repo.json``."""

    expiry_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EXPIRY_DAYS))

    @classmethod
    def load(cls, path: Path) -> RepoSettings:
        """Read ``repo.json``; UpdateError when it is not a repository."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            days = {role: int(raw["expiry_days"][role]) for role in ALL_ROLES}
        except FileNotFoundError:
            raise UpdateError(
                f"{path.parent}: not a repository (no {SETTINGS_FILE}); run `edge-agent repo init`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UpdateError(f"{path}: unreadable repository settings: {exc!r}") from None
        return cls(days)

    def save(self, path: Path) -> None:
        """Write ``repo.json`` atomically."""
        text = json.dumps({"expiry_days": self.expiry_days}, indent=2) + "\n"
        write_atomically(path, text.encode())


class OperatorRepository:
    """Reads, signs and publishes the metadata of one repository directory.

    Signing keys are looked up by key id in ``keys_dir``; an operation that needs an offline key
    (root, targets) fails with a message that says which role's key to bring.
    """

    def __init__(self, repo_dir: Path, keys_dir: Path | None = None) -> None:
        self.repo_dir = repo_dir
        self.keys_dir = keys_dir if keys_dir is not None else repo_dir / "keys"
        self.metadata_dir = repo_dir / "metadata"
        self.targets_dir = repo_dir / "targets"
        self.settings = RepoSettings.load(repo_dir / SETTINGS_FILE)
        self._serializer = JSONSerializer(compact=False)

    # -- creating ------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        repo_dir: Path,
        keys_dir: Path | None = None,
        role_keys: dict[str, RoleKeys] | None = None,
        expiry_days: dict[str, int] | None = None,
    ) -> OperatorRepository:
        """Create keys and the first version of every role in an empty ``repo_dir``."""
        if (repo_dir / SETTINGS_FILE).exists():
            raise UpdateError(f"{repo_dir}: already a repository; refusing to overwrite it")
        keys_dir = keys_dir if keys_dir is not None else repo_dir / "keys"
        shapes = {role: RoleKeys() for role in ALL_ROLES} | (role_keys or {})
        days = dict(DEFAULT_EXPIRY_DAYS) | (expiry_days or {})
        repo_dir.mkdir(parents=True, exist_ok=True)
        RepoSettings(days).save(repo_dir / SETTINGS_FILE)
        repo = cls(repo_dir, keys_dir)
        with repo.locked():
            keys = {
                role: [generate_key(keys_dir, role) for _ in range(shapes[role].count)]
                for role in ALL_ROLES
            }
            root = Root(consistent_snapshot=True)
            for role in TOP_ROLES:
                root.roles[role].keyids.clear()
                root.roles[role].threshold = shapes[role].threshold
                for key in keys[role]:
                    root.add_key(key.public_key, role)
            rollouts_role = DelegatedRole(
                ROLLOUTS, [], shapes[ROLLOUTS].threshold, terminating=True, paths=["rollouts/*"]
            )
            targets = Targets(delegations=Delegations(keys={}, roles={ROLLOUTS: rollouts_role}))
            for key in keys[ROLLOUTS]:
                targets.add_key(key.public_key, ROLLOUTS)
            now = utc_now()
            for signed, role in ((root, Root.type), (targets, Targets.type)):
                signed.expires = now + timedelta(days=days[role])
            repo._publish(Root.type, Metadata(root))
            repo._publish(Targets.type, Metadata(targets))
            rollouts = Targets(expires=now + timedelta(days=days[ROLLOUTS]))
            repo._publish(ROLLOUTS, Metadata(rollouts))
            repo._publish_snapshot_and_timestamp()
        return repo

    # -- reading -------------------------------------------------------------------------

    def load(self, role: str, signed_type: type[S]) -> Metadata[S]:
        """The current metadata of ``role`` (unverified: it is our own repository)."""
        path = self.metadata_dir / f"{role}.json"
        try:
            md = Metadata[S].from_file(str(path))
        except FileNotFoundError:
            raise UpdateError(f"{path}: missing; is {self.repo_dir} a repository?") from None
        except Exception as exc:
            raise UpdateError(f"{path}: unreadable metadata: {exc}") from None
        if not isinstance(md.signed, signed_type):
            raise UpdateError(f"{path}: holds {md.signed.type} metadata, not {role}")
        return md

    def timestamp_version(self) -> int:
        """The newest timestamp version (what the registry announces)."""
        return self.load(Timestamp.type, Timestamp).signed.version

    # -- changing ------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the repository's lock file: one writer at a time (operators, cron refresh)."""
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        with (self.repo_dir / ".lock").open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def bump(self, md: Metadata[Any], role: str, valid_for: timedelta | None = None) -> None:
        """Next version, fresh expiry (``valid_for`` or the repository's period for ``role``)."""
        md.signed.version += 1
        md.signed.expires = utc_now() + (valid_for or timedelta(self.settings.expiry_days[role]))

    @contextmanager
    def edit_targets(self, role: str = Targets.type) -> Iterator[Metadata[Targets]]:
        """Load ``role`` (targets or rollouts) under the lock for the caller to change.

        On leaving the block it is bumped, signed and written, followed by a new snapshot and
        timestamp. Raising inside the block writes nothing.
        """
        with self.locked():
            md = self.load(role, Targets)
            yield md
            self.bump(md, role)
            self._publish(role, md)
            self._publish_snapshot_and_timestamp()

    def refresh(self, roles: tuple[str, ...], valid_for: timedelta | None = None) -> list[str]:
        """Re-sign ``roles`` with a new version and expiry; snapshot/timestamp follow.

        Returns the roles that got a new version, in the order they were written.
        """
        unknown = set(roles) - set(ALL_ROLES)
        if unknown:
            raise UpdateError(f"unknown role(s) {sorted(unknown)}; roles: {', '.join(ALL_ROLES)}")
        written: list[str] = []
        with self.locked():
            for role in (Root.type, Targets.type, ROLLOUTS):
                if role in roles:
                    md: Metadata[Any] = self.load(role, Root if role == Root.type else Targets)
                    self.bump(md, role, valid_for)
                    self._publish(role, md, signers_of_previous=role == Root.type)
                    written.append(role)
            if written or Snapshot.type in roles:
                snap_valid = valid_for if Snapshot.type in roles else None
                self._publish_snapshot(snap_valid)
                written.append(Snapshot.type)
            self._publish_timestamp(valid_for if Timestamp.type in roles else None)
            written.append(Timestamp.type)
        return written

    def rotate_key(self, role: str, shape: RoleKeys | None = None) -> list[KeyFile]:
        """Replace every key of ``role`` with new ones (``shape``: how many, what threshold).

        A new root version is signed by the old root keys (so devices can follow the chain)
        and, when root itself rotates, by the new ones. The old private keys move to
        ``KEYS/retired/``; metadata signed by them is refused by devices from then on.
        """
        if role not in ALL_ROLES:
            raise UpdateError(f"unknown role {role!r}; roles: {', '.join(ALL_ROLES)}")
        with self.locked():
            available = load_keys(self.keys_dir)
            root_md = self.load(Root.type, Root)
            if role == ROLLOUTS:
                targets_md = self.load(Targets.type, Targets)
                delegated = targets_md.signed.get_delegated_role(ROLLOUTS)
                old_ids, threshold = list(delegated.keyids), delegated.threshold
            else:
                old_ids = list(root_md.signed.roles[role].keyids)
                threshold = root_md.signed.roles[role].threshold
            shape = shape or RoleKeys(len(old_ids), threshold)
            new_keys = [generate_key(self.keys_dir, role) for _ in range(shape.count)]
            if role == ROLLOUTS:
                for keyid in old_ids:
                    targets_md.signed.revoke_key(keyid, ROLLOUTS)
                for key in new_keys:
                    targets_md.signed.add_key(key.public_key, ROLLOUTS)
                targets_md.signed.get_delegated_role(ROLLOUTS).threshold = shape.threshold
                self.bump(targets_md, Targets.type)
                self._publish(Targets.type, targets_md)
            else:
                for keyid in old_ids:
                    root_md.signed.revoke_key(keyid, role)
                for key in new_keys:
                    root_md.signed.add_key(key.public_key, role)
                root_md.signed.roles[role].threshold = shape.threshold
                self.bump(root_md, Root.type)
                self._publish(Root.type, root_md, signers_of_previous=True)
            if role in (Targets.type, ROLLOUTS):
                re_signed: Metadata[Targets] = self.load(role, Targets)
                self.bump(re_signed, role)
                self._publish(role, re_signed)
            self._publish_snapshot_and_timestamp()
            for keyid in old_ids:
                if keyid in available:
                    retire_key(available[keyid], self.keys_dir)
        return new_keys

    # -- signing and writing -------------------------------------------------------------

    def _publish(self, role: str, md: Metadata[Any], *, signers_of_previous: bool = False) -> None:
        """Sign ``md`` for ``role`` and write ``<version>.<role>.json`` + ``<role>.json``."""
        self._sign(role, md, signers_of_previous)
        data = md.to_bytes(self._serializer)
        version = md.signed.version
        if role != Timestamp.type:
            write_atomically(self.metadata_dir / f"{version}.{role}.json", data)
        write_atomically(self.metadata_dir / f"{role}.json", data)

    def _sign(self, role: str, md: Metadata[Any], signers_of_previous: bool) -> None:
        keys = load_keys(self.keys_dir)
        delegators = self._delegating_roles(role, md, signers_of_previous)
        md.signatures.clear()
        signed_by: set[str] = set()
        for keyids, _threshold in delegators:
            for keyid in keyids:
                if keyid in keys and keyid not in signed_by:
                    try:
                        md.sign(keys[keyid].signer, append=True)
                    except UnsignedMetadataError as exc:
                        raise UpdateError(f"signing {role} failed: {exc}") from None
                    signed_by.add(keyid)
        for keyids, threshold in delegators:
            have = len(signed_by & set(keyids))
            if have < threshold:
                where = "an offline role: mount its keys" if role in OFFLINE_ROLES else "online"
                raise UpdateError(
                    f"{role} needs {threshold} signature(s) but only {have} of its keys are in "
                    f"{self.keys_dir} ({where}); pass --keys DIR with the {role} keys"
                )

    def _delegating_roles(
        self, role: str, md: Metadata[Any], signers_of_previous: bool
    ) -> list[tuple[list[str], int]]:
        """Key ids and thresholds that must sign ``role`` (two sets for a new root)."""
        if role == Root.type:
            current = md.signed.roles[Root.type]
            sets = [(list(current.keyids), current.threshold)]
            previous_path = self.metadata_dir / "root.json"
            if signers_of_previous and previous_path.exists():
                old = self.load(Root.type, Root).signed.roles[Root.type]
                sets.append((list(old.keyids), old.threshold))
            return sets
        if role == ROLLOUTS:
            delegated = self.load(Targets.type, Targets).signed.get_delegated_role(ROLLOUTS)
            return [(list(delegated.keyids), delegated.threshold)]
        root_role = self.load(Root.type, Root).signed.roles[role]
        return [(list(root_role.keyids), root_role.threshold)]

    def _publish_snapshot_and_timestamp(self) -> None:
        self._publish_snapshot(None)
        self._publish_timestamp(None)

    def _publish_snapshot(self, valid_for: timedelta | None) -> None:
        path = self.metadata_dir / f"{Snapshot.type}.json"
        snapshot_md = self.load(Snapshot.type, Snapshot) if path.exists() else None
        if snapshot_md is None:
            snapshot_md = Metadata(Snapshot())
            snapshot_md.signed.version = 0  # bump() below makes it 1
        for role in (Targets.type, ROLLOUTS):
            version = self.load(role, Targets).signed.version
            snapshot_md.signed.meta[f"{role}.json"] = MetaFile(version=version)
        self.bump(snapshot_md, Snapshot.type, valid_for)
        self._publish(Snapshot.type, snapshot_md)

    def _publish_timestamp(self, valid_for: timedelta | None) -> None:
        path = self.metadata_dir / f"{Timestamp.type}.json"
        ts_md = self.load(Timestamp.type, Timestamp) if path.exists() else None
        if ts_md is None:
            ts_md = Metadata(Timestamp())
            ts_md.signed.version = 0  # bump() below makes it 1
        snapshot_version = self.load(Snapshot.type, Snapshot).signed.version
        snapshot_bytes = (self.metadata_dir / f"{snapshot_version}.snapshot.json").read_bytes()
        ts_md.signed.snapshot_meta = MetaFile.from_data(
            snapshot_version, snapshot_bytes, ["sha256"]
        )
        self.bump(ts_md, Timestamp.type, valid_for)
        self._publish(Timestamp.type, ts_md)
