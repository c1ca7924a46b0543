"""How models appear as TUF targets, and the pure decisions made about them.

A model release is the target ``models/<name>/<release>/<file>``; ``release`` is an integer the
repository assigns (1, 2, 3...) and devices compare. The target's signed custom metadata carries
``{"edge_agent": {"name", "release", "manifest_json"}}``, so the manifest is exactly as trusted
as the model bytes. The manifest travels as a JSON *string*: TUF signs canonical JSON, which has
no floats, and a manifest has many (scales, latencies). The package's other files (the drift
profile, the evaluation report) are targets beside the model, so the whole package is signed
and travels. Repository tooling and devices both read targets through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tuf.api.metadata import TargetFile

from edge_agent.errors import UpdateError
from edge_agent.names import MODEL_NAME, RELEASE

MODELS_PREFIX = "models"
CUSTOM_KEY = "edge_agent"
_MODEL_PATH = re.compile(rf"^models/({MODEL_NAME.pattern})/({RELEASE.pattern})/([^/]+)$")


@dataclass(frozen=True)
class ModelRelease:
    """One published model file, as signed targets metadata describes it."""

    name: str
    release: int
    target_path: str
    length: int
    sha256: str
    manifest: dict[str, Any]

    @property
    def filename(self) -> str:
        """The model's file name (its suffix tells the runtime the format)."""
        return self.target_path.rsplit("/", 1)[1]

    @property
    def manifest_version(self) -> str:
        """The version the converter gave the package (e.g. ``1.2.0``)."""
        return str(self.manifest.get("version", ""))


def model_target_path(name: str, release: int, filename: str) -> str:
    """``models/<name>/<release>/<filename>``."""
    MODEL_NAME.check(name, "model", error=UpdateError)
    path = f"{MODELS_PREFIX}/{name}/{release}/{filename}"
    if not _MODEL_PATH.fullmatch(path):
        raise UpdateError(f"cannot publish {path!r}: model name or file name not allowed")
    return path


def model_custom(name: str, release: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``custom`` field a model target carries."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return {CUSTOM_KEY: {"name": name, "release": release, "manifest_json": text}}


def package_parts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The package's files besides the model, by part: ``{"profile": FileRef, ...}``.

    Each is published as a target of its own beside the model
    (``models/<name>/<release>/<file name>``) and pinned twice: by the signed target (length,
    sha256) and by the signed manifest's FileRef, which must agree.
    """
    parts: dict[str, dict[str, Any]] = {}
    profile = manifest.get("profile")
    if isinstance(profile, dict):
        parts["profile"] = profile
    evaluation = manifest.get("evaluation")
    report = evaluation.get("report") if isinstance(evaluation, dict) else None
    if isinstance(report, dict):
        parts["evaluation"] = report
    return parts


def part_target_path(
    name: str, release: int, model_filename: str, part: str, ref: dict[str, Any]
) -> str:
    """Where a part of a release's variant is published: beside its model, named after it.

    ``models/digits/3/digits_int8.tflite.profile.json``: variants' parts never collide.
    """
    suffix = PurePosixPath(str(ref.get("path", ""))).suffix
    return model_target_path(name, release, f"{model_filename}.{part}{suffix}")


def part_custom(name: str, release: int, part: str) -> dict[str, Any]:
    """The ``custom`` field of a part target (no manifest: it is not a release by itself)."""
    return {CUSTOM_KEY: {"name": name, "release": release, "part": part}}


def release_of(target: TargetFile) -> ModelRelease | None:
    """The model release a target describes; None for targets that are not models.

    The path and the custom metadata must agree (name and release), otherwise the target is
    treated as malformed and ignored rather than trusted halfway.
    """
    match = _MODEL_PATH.fullmatch(target.path)
    custom = target.custom
    if match is None or not isinstance(custom, dict):
        return None
    info = custom.get(CUSTOM_KEY)
    if not isinstance(info, dict):
        return None
    name, release = match.group(1), int(match.group(2))
    if info.get("name") != name or info.get("release") != release:
        return None
    try:
        manifest = json.loads(info.get("manifest_json", ""))
    except (TypeError, ValueError):
        return None
    if not isinstance(manifest, dict) or "sha256" not in target.hashes:
        return None
    return ModelRelease(
        name, release, target.path, target.length, target.hashes["sha256"], manifest
    )


def releases_of(targets: dict[str, TargetFile]) -> list[ModelRelease]:
    """Every model release among ``targets``, sorted by name then release."""
    found = [r for r in (release_of(t) for t in targets.values()) if r is not None]
    return sorted(found, key=lambda r: (r.name, r.release))


def newest_release(releases: list[ModelRelease], name: str) -> ModelRelease | None:
    """The highest release of model ``name``."""
    mine = [r for r in releases if r.name == name]
    return max(mine, key=lambda r: r.release) if mine else None


def check_installable(
    candidate: ModelRelease,
    installed_newest: int | None,
    rejected: dict[int, str],
    *,
    allow_downgrade: bool = False,
) -> None:
    """Refuse a release the device must not install; UpdateError says why.

    ``installed_newest`` is the highest release the device has installed (any state);
    ``rejected`` maps releases that failed on this device to the reason they failed.
    """
    if candidate.release in rejected:
        raise UpdateError(
            f"{candidate.name} release {candidate.release} was rejected on this device before "
            f"({rejected[candidate.release]}); it is never reinstalled: publish a new release"
        )
    if (
        installed_newest is not None
        and candidate.release < installed_newest
        and (not allow_downgrade)
    ):
        raise UpdateError(
            f"{candidate.name}: the newest signed release is {candidate.release}, older than "
            f"release {installed_newest} already on this device (downgrade refused; pass "
            "--allow-downgrade if the operator withdrew the newer release on purpose)"
        )
