"""Publishing model packages into the repository, and the repository's status report.

``add_model`` takes the directory `edge-agent convert package` wrote, checks every file against
its manifest, copies the model and its parts (profile, evaluation) into ``targets/`` under their
hash-prefixed names, and signs a new targets version whose custom metadata carries the manifest
(the targets key must be present). ``add_release`` publishes several packages of one version as
the variants of one release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from tuf.api.metadata import Root, Snapshot, TargetFile, Targets, Timestamp

from edge_agent._fs import copy_atomically
from edge_agent.errors import UpdateError
from edge_agent.manifest import ModelManifest, verify_package, version_key
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
    return add_release(repo, [package_dir])[0]


def add_release(repo: OperatorRepository, package_dirs: Sequence[Path]) -> list[ModelRelease]:
    """Publish packages of one model and version as the variants of one release.

    One signed targets version holds them all (e.g. int8 TFLite for a Pi, an Edge TPU build
    for Coral, ONNX for Jetson), each with its manifest's ``target_devices`` and
    ``target_delegates``, from which every device picks the one it runs best.

    Raises ModelError for an incomplete or altered package, UpdateError when the packages
    disagree on name or version, share a model file name, or the version is not newer than
    the newest published one.
    """
    if not package_dirs:
        raise UpdateError("nothing to publish: give at least one package directory")
    packages = [(package_dir, verify_package(package_dir)) for package_dir in package_dirs]
    first = packages[0][1]
    names: set[str] = set()
    for package_dir, manifest in packages:
        if (manifest.name, manifest.version) != (first.name, first.version):
            raise UpdateError(
                f"{package_dir}: {manifest.name} {manifest.version} cannot be a variant of "
                f"{first.name} {first.version}: the variants of a release share name and version"
            )
        filename = PurePosixPath(manifest.model.path).name
        if filename in names:
            raise UpdateError(
                f"{package_dir}: another variant's model is also called {filename}; give each "
                "variant's model file its own name"
            )
        names.add(filename)
    published: list[ModelRelease] = []
    with repo.edit_targets(Targets.type) as targets_md:
        latest = newest_release(releases_of(targets_md.signed.targets), first.name)
        if latest is not None and version_key(first.version) <= version_key(
            latest.manifest_version
        ):
            raise UpdateError(
                f"{packages[0][0]}: {first.name} {first.version} is not newer than the "
                f"published {latest.manifest_version} (release {latest.release}); bump the "
                "version when packaging"
            )
        release = 1 if latest is None else latest.release + 1
        for package_dir, manifest in packages:
            targets = _variant_targets(repo, package_dir, manifest, release)
            targets_md.signed.targets.update(targets)
            model = release_of(next(iter(targets.values())))
            if model is None:  # pragma: no cover - model_target_path validated the path
                raise UpdateError(f"{package_dir}: published target does not parse back")
            published.append(model)
    return published


def _variant_targets(
    repo: OperatorRepository, package_dir: Path, manifest: ModelManifest, release: int
) -> dict[str, TargetFile]:
    """Copy one package's model and parts into ``targets/``; their targets, the model first."""
    source = package_dir / manifest.model.path
    filename = PurePosixPath(manifest.model.path).name
    target_path = model_target_path(manifest.name, release, filename)
    target = TargetFile.from_file(target_path, str(source), ["sha256"])
    if target.hashes["sha256"] != manifest.model.sha256:
        raise UpdateError(f"{source}: changed while being published; try again")
    document = manifest.model_dump(mode="json", exclude_none=True)
    target.unrecognized_fields["custom"] = model_custom(manifest.name, release, document)
    copy_atomically(source, repo.targets_dir / target.get_prefixed_paths()[0])
    targets = {target_path: target}
    for part, ref in package_parts(document).items():
        part_path = part_target_path(manifest.name, release, filename, part, ref)
        part_source = package_dir / ref["path"]
        part_target = TargetFile.from_file(part_path, str(part_source), ["sha256"])
        if part_target.hashes["sha256"] != ref["sha256"]:
            raise UpdateError(f"{part_source}: changed while being published; try again")
        part_target.unrecognized_fields["custom"] = part_custom(manifest.name, release, part)
        copy_atomically(part_source, repo.targets_dir / part_target.get_prefixed_paths()[0])
        targets[part_path] = part_target
    return targets


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
