"""Publishing model packages into the repository, and the repository's status report.

``add_model`` takes the directory `edge-agent convert package` wrote, checks every file against
its manifest, copies the model into ``targets/`` under its hash-prefixed name, and signs a new
targets version whose custom metadata carries the manifest (the targets key must be present).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from tuf.api.metadata import Root, Snapshot, TargetFile, Targets, Timestamp

from edge_agent._fs import copy_atomically
from edge_agent.errors import UpdateError
from edge_agent.manifest import verify_package, version_key
from edge_agent.trust.operator.keys import load_keys
from edge_agent.trust.operator.repository import (
    ROLLOUTS,
    OperatorRepository,
    utc_now,
)
from edge_agent.trust.targets import (
    ModelRelease,
    model_custom,
    model_target_path,
    newest_release,
    package_parts,
    part_custom,
    part_target_path,
    release_of,
    releases_of,
)


def add_model(repo: OperatorRepository, package_dir: Path) -> ModelRelease:
    """Publish the package at ``package_dir`` as the next release of its model.

    Raises ModelError when the package is incomplete or altered, UpdateError when its version
    is not newer than the newest published one or the targets key is missing.
    """
    manifest = verify_package(package_dir)
    source = package_dir / manifest.model.path
    filename = PurePosixPath(manifest.model.path).name
    with repo.edit_targets(Targets.type) as targets_md:
        latest = newest_release(releases_of(targets_md.signed.targets), manifest.name)
        if latest is not None and version_key(manifest.version) <= version_key(
            latest.manifest_version
        ):
            raise UpdateError(
                f"{package_dir}: {manifest.name} {manifest.version} is not newer than the "
                f"published {latest.manifest_version} (release {latest.release}); bump the "
                "version when packaging"
            )
        release = 1 if latest is None else latest.release + 1
        target_path = model_target_path(manifest.name, release, filename)
        target = TargetFile.from_file(target_path, str(source), ["sha256"])
        if target.hashes["sha256"] != manifest.model.sha256:
            raise UpdateError(f"{source}: changed while being published; try again")
        target.unrecognized_fields["custom"] = model_custom(
            manifest.name, release, manifest.model_dump(mode="json", exclude_none=True)
        )
        hashed_name = target.get_prefixed_paths()[0]
        copy_atomically(source, repo.targets_dir / hashed_name)
        targets_md.signed.targets[target_path] = target
        parts = package_parts(manifest.model_dump(mode="json", exclude_none=True))
        for part, ref in parts.items():
            part_path = part_target_path(manifest.name, release, ref)
            if part_path == target_path:
                raise UpdateError(
                    f"{package_dir}: the {part} file has the model's file name; rename it"
                )
            part_source = package_dir / ref["path"]
            part_target = TargetFile.from_file(part_path, str(part_source), ["sha256"])
            if part_target.hashes["sha256"] != ref["sha256"]:
                raise UpdateError(f"{part_source}: changed while being published; try again")
            part_target.unrecognized_fields["custom"] = part_custom(manifest.name, release, part)
            copy_atomically(part_source, repo.targets_dir / part_target.get_prefixed_paths()[0])
            targets_md.signed.targets[part_path] = part_target
    published = release_of(target)
    if published is None:  # pragma: no cover - model_target_path validated the path
        raise UpdateError(f"{target_path}: published target does not parse back")
    return published


@dataclass(frozen=True)
class RoleStatus:
    """One role's current metadata."""

    role: str
    version: int
    expires: datetime
    threshold: int
    keyids: list[str]
    keys_here: int

    @property
    def days_left(self) -> float:
        """Days until expiry (negative: expired)."""
        return (self.expires - utc_now()).total_seconds() / 86400


@dataclass(frozen=True)
class RepoStatus:
    """What `repo status` reports."""

    roles: list[RoleStatus]
    models: list[ModelRelease]
    other_targets: list[str]


def repo_status(repo: OperatorRepository) -> RepoStatus:
    """Versions, expiry dates, key counts and published models."""
    root = repo.load(Root.type, Root).signed
    targets = repo.load(Targets.type, Targets).signed
    rollouts = repo.load(ROLLOUTS, Targets).signed
    local = set(load_keys(repo.keys_dir))
    roles: list[RoleStatus] = []
    for role, signed in (
        (Root.type, root),
        (Targets.type, targets),
        (ROLLOUTS, rollouts),
        (Snapshot.type, repo.load(Snapshot.type, Snapshot).signed),
        (Timestamp.type, repo.load(Timestamp.type, Timestamp).signed),
    ):
        keyinfo = targets.get_delegated_role(ROLLOUTS) if role == ROLLOUTS else root.roles[role]
        roles.append(
            RoleStatus(
                role,
                signed.version,
                signed.expires,
                keyinfo.threshold,
                list(keyinfo.keyids),
                len(local & set(keyinfo.keyids)),
            )
        )
    models = releases_of(targets.targets)
    model_paths = {m.target_path for m in models}
    others = sorted(p for p in [*targets.targets, *rollouts.targets] if p not in model_paths)
    return RepoStatus(roles, models, others)
