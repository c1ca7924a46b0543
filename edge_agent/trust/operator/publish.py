"""Publishing model packages into the repository, and the repository's status report.

``add_model`` takes the directory `edge-agent convert package` wrote, checks every file against
its manifest, copies the model and its parts (profile, evaluation) into ``targets/`` under their
hash-prefixed names, and signs a new targets version whose custom metadata carries the manifest
(the targets key must be present). ``add_release`` publishes several packages of one version as
the variants of one release.

A release may carry a delta per variant: a zstd patch-from frame that rebuilds its model from
the same variant of an older release (by default the newest published one), published only
when it is at most ``DELTA_MAX_RATIO`` of the model's size; devices that hold the older model
download it instead of the model (docs/registry.md, "Delta releases").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from tuf.api.metadata import Root, Snapshot, TargetFile, Targets, Timestamp

from edge_agent import _zstd
from edge_agent._fs import copy_atomically, write_atomically
from edge_agent.errors import UpdateError
from edge_agent.manifest import ModelManifest, verify_package, version_key
from edge_agent.trust.operator.keys import load_keys
from edge_agent.trust.operator.repository import (
    ROLLOUTS,
    OperatorRepository,
    utc_now,
)
from edge_agent.trust.targets import (
    DeltaRef,
    ModelRelease,
    delta_custom,
    delta_target_path,
    model_custom,
    model_target_path,
    newest_release,
    package_parts,
    part_custom,
    part_target_path,
    release_of,
    releases_of,
)

DELTA_MAX_RATIO = 0.6
"""A delta is published only when it is at most this fraction of the model's bytes: a bigger
one saves too little to be worth a second way of building the model (and its storage)."""


@dataclass(frozen=True)
class DeltaPolicy:
    """Whether ``add_release`` publishes deltas, and from which release."""

    enabled: bool = True
    from_release: int | None = None
    """The release the deltas start from; None: the newest published release, if any."""
    max_ratio: float = DELTA_MAX_RATIO


def add_model(
    repo: OperatorRepository,
    package_dir: Path,
    deltas: DeltaPolicy | None = None,
    report: Callable[[str], None] | None = None,
) -> ModelRelease:
    """Publish the package at ``package_dir`` as the next release of its model.

    Raises ModelError when the package is incomplete or altered, UpdateError when its version
    is not newer than the newest published one or the targets key is missing.
    """
    return add_release(repo, [package_dir], deltas, report)[0]


def add_release(
    repo: OperatorRepository,
    package_dirs: Sequence[Path],
    deltas: DeltaPolicy | None = None,
    report: Callable[[str], None] | None = None,
) -> list[ModelRelease]:
    """Publish packages of one model and version as the variants of one release.

    One signed targets version holds them all (e.g. int8 TFLite for a Pi, an Edge TPU build
    for Coral, ONNX for Jetson), each with its manifest's ``target_devices`` and
    ``target_delegates``, from which every device picks the one it runs best. Each variant
    also gets a delta from the same variant of an older release when ``deltas`` allows and it
    is small enough; ``report`` hears why a delta was left out.

    Raises ModelError for an incomplete or altered package, UpdateError when the packages
    disagree on name or version, share a model file name, the version is not newer than the
    newest published one, or ``deltas.from_release`` is not a published release.
    """
    policy = deltas or DeltaPolicy()
    say = report or (lambda _note: None)
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
        bases = _delta_bases(targets_md.signed.targets, first.name, latest, policy)
        for package_dir, manifest in packages:
            base = _base_variant(bases, PurePosixPath(manifest.model.path).name, say)
            base_file = None
            if base is not None:
                prefixed = targets_md.signed.targets[base.target_path].get_prefixed_paths()[0]
                base_file = (base, repo.targets_dir / prefixed)
            targets = _variant_targets(
                repo, package_dir, manifest, release, base_file, policy.max_ratio, say
            )
            targets_md.signed.targets.update(targets)
            model = release_of(next(iter(targets.values())))
            if model is None:  # pragma: no cover - model_target_path validated the path
                raise UpdateError(f"{package_dir}: published target does not parse back")
            published.append(model)
    return published


def _delta_bases(
    targets: dict[str, TargetFile],
    name: str,
    latest: ModelRelease | None,
    policy: DeltaPolicy,
) -> list[ModelRelease]:
    """The variants of the release deltas start from (empty: no deltas)."""
    if not policy.enabled:
        return []
    if policy.from_release is not None:
        number = policy.from_release
    elif latest is not None:
        number = latest.release
    else:
        return []  # the first release: nothing to start from
    variants = [r for r in releases_of(targets) if r.name == name and r.release == number]
    if not variants:
        published = sorted({r.release for r in releases_of(targets) if r.name == name})
        raise UpdateError(
            f"cannot publish a delta from {name} release {number}: no such release "
            f"(published: {', '.join(map(str, published)) or 'none'})"
        )
    return variants


def _base_variant(
    bases: list[ModelRelease], filename: str, say: Callable[[str], None]
) -> ModelRelease | None:
    """The older variant a variant's delta starts from: same file name, or the only one."""
    if not bases:
        return None
    same = [b for b in bases if b.filename == filename]
    if same:
        return same[0]
    if len(bases) == 1:
        return bases[0]
    say(
        f"{filename}: no delta (release {bases[0].release} has no variant of that name "
        "and several others)"
    )
    return None


def _delta(
    repo: OperatorRepository,
    name: str,
    release: int,
    filename: str,
    source: Path,
    base: tuple[ModelRelease, Path],
    max_ratio: float,
    say: Callable[[str], None],
) -> DeltaRef | None:
    """Make, check and store the delta of ``source`` from ``base``; None when not worth it."""
    base_release, base_file = base
    if not base_file.is_file():
        say(f"{filename}: no delta ({base_file} is missing from the repository)")
        return None
    try:
        data = _zstd.encode(base_file, source)
    except _zstd.PatchError as exc:
        say(f"{filename}: no delta ({exc})")
        return None
    size = source.stat().st_size
    if len(data) > max_ratio * size:
        say(
            f"{filename}: no delta from release {base_release.release} ({len(data)} B is "
            f"{len(data) / max(size, 1):.0%} of the model; the limit is {max_ratio:.0%})"
        )
        return None
    path = delta_target_path(name, release, filename, base_release.release)
    target = TargetFile.from_data(path, data, ["sha256"])
    ref = DeltaRef(
        path,
        target.length,
        target.hashes["sha256"],
        base_release.release,
        base_release.sha256,
        base_release.length,
    )
    write_atomically(repo.targets_dir / target.get_prefixed_paths()[0], data)
    return ref


def _variant_targets(
    repo: OperatorRepository,
    package_dir: Path,
    manifest: ModelManifest,
    release: int,
    base: tuple[ModelRelease, Path] | None,
    max_ratio: float,
    say: Callable[[str], None],
) -> dict[str, TargetFile]:
    """Copy one package's model, delta and parts into ``targets/``; their targets, model first."""
    source = package_dir / manifest.model.path
    filename = PurePosixPath(manifest.model.path).name
    target_path = model_target_path(manifest.name, release, filename)
    target = TargetFile.from_file(target_path, str(source), ["sha256"])
    if target.hashes["sha256"] != manifest.model.sha256:
        raise UpdateError(f"{source}: changed while being published; try again")
    delta = None
    if base is not None:
        delta = _delta(repo, manifest.name, release, filename, source, base, max_ratio, say)
    document = manifest.model_dump(mode="json", exclude_none=True)
    target.unrecognized_fields["custom"] = model_custom(
        manifest.name, release, document, (delta,) if delta else ()
    )
    copy_atomically(source, repo.targets_dir / target.get_prefixed_paths()[0])
    targets = {target_path: target}
    if delta is not None:
        delta_target = TargetFile(delta.length, {"sha256": delta.sha256}, delta.target_path)
        delta_target.unrecognized_fields["custom"] = delta_custom(manifest.name, release, delta)
        targets[delta.target_path] = delta_target
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
    model_paths = {m.target_path for m in models} | {
        d.target_path for m in models for d in m.deltas
    }
    others = sorted(p for p in [*targets.targets, *rollouts.targets] if p not in model_paths)
    return RepoStatus(roles, models, others)
