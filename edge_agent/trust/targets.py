"""How models appear as TUF targets, and the pure decisions made about them.

A model release is the target ``models/<name>/<release>/<file>``; ``release`` is an integer the
repository assigns (1, 2, 3...) and devices compare. The target's signed custom metadata carries
``{"edge_agent": {"name", "release", "manifest_json"}}``, so the manifest is exactly as trusted
as the model bytes. The manifest travels as a JSON *string*: TUF signs canonical JSON, which has
no floats, and a manifest has many (scales, latencies). The package's other files (the drift
profile, the evaluation report) are targets beside the model, so the whole package is signed
and travels. A release may also carry a binary delta from an older release (a zstd patch-from
frame, ``<file>.delta-from-<release>.zst``), signed as a target of its own and pinned by the
model target's custom metadata (``deltas``), so a device that holds the older model downloads
the delta, rebuilds the model and verifies it against the model target exactly as a download.
Repository tooling and devices both read targets through this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tuf.api.metadata import TargetFile

from edge_agent.errors import UpdateError
from edge_agent.names import MODEL_NAME, RELEASE

MODELS_PREFIX = "models"
CUSTOM_KEY = "edge_agent"
_MODEL_PATH = re.compile(rf"^models/({MODEL_NAME.pattern})/({RELEASE.pattern})/([^/]+)$")


@dataclass(frozen=True)
class DeltaRef:
    """A signed delta that rebuilds a release's model from an older release's model.

    Pinned in the model target's signed custom metadata: the delta target's path, length and
    sha256, and the exact older model it applies to (``from_sha256``, ``from_length``).
    """

    target_path: str
    length: int
    sha256: str
    from_release: int
    from_sha256: str
    from_length: int

    def as_custom(self) -> dict[str, Any]:
        """The pin as it rides in the model target's custom metadata."""
        return {
            "path": self.target_path,
            "bytes": self.length,
            "sha256": self.sha256,
            "from_release": self.from_release,
            "from_sha256": self.from_sha256,
            "from_bytes": self.from_length,
        }

    @staticmethod
    def from_custom(raw: object) -> DeltaRef | None:
        """The pin read back; None when malformed (ignored: the full download still works)."""
        if not isinstance(raw, dict):
            return None
        try:
            ref = DeltaRef(
                str(raw["path"]),
                int(raw["bytes"]),
                str(raw["sha256"]),
                int(raw["from_release"]),
                str(raw["from_sha256"]),
                int(raw["from_bytes"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return ref if _MODEL_PATH.fullmatch(ref.target_path) else None


@dataclass(frozen=True)
class ModelRelease:
    """One published model file, as signed targets metadata describes it."""

    name: str
    release: int
    target_path: str
    length: int
    sha256: str
    manifest: dict[str, Any]
    deltas: tuple[DeltaRef, ...] = ()
    """Signed deltas that rebuild this model from older releases' models."""

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


def model_custom(
    name: str, release: int, manifest: dict[str, Any], deltas: tuple[DeltaRef, ...] = ()
) -> dict[str, Any]:
    """The ``custom`` field a model target carries (with its deltas' pins, if any)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    info: dict[str, Any] = {"name": name, "release": release, "manifest_json": text}
    if deltas:
        info["deltas"] = [delta.as_custom() for delta in deltas]
    return {CUSTOM_KEY: info}


def delta_target_path(name: str, release: int, model_filename: str, from_release: int) -> str:
    """Where the delta of a variant's model from ``from_release`` is published.

    ``models/digits/3/digits.onnx.delta-from-2.zst``: beside the model, named after it.
    """
    return model_target_path(name, release, f"{model_filename}.delta-from-{from_release}.zst")


def delta_custom(name: str, release: int, delta: DeltaRef) -> dict[str, Any]:
    """The ``custom`` field of a delta target (not a release by itself)."""
    return {
        CUSTOM_KEY: {
            "name": name,
            "release": release,
            "part": "delta",
            "from_release": delta.from_release,
            "from_sha256": delta.from_sha256,
        }
    }


def choose_delta(release: ModelRelease, have: Mapping[str, Path]) -> DeltaRef | None:
    """The signed delta of ``release`` this device can apply: its base is a file it holds.

    ``have`` maps the sha256 of each model file the device holds to the file. The smallest
    applicable delta wins; None when there is none (the device downloads the whole model).
    """
    usable = [d for d in release.deltas if d.from_sha256 in have and d.length < release.length]
    return min(usable, key=lambda d: d.length, default=None)


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
    raw_deltas = info.get("deltas")
    deltas = (
        [DeltaRef.from_custom(raw) for raw in raw_deltas] if isinstance(raw_deltas, list) else []
    )
    return ModelRelease(
        name,
        release,
        target.path,
        target.length,
        target.hashes["sha256"],
        manifest,
        tuple(d for d in deltas if d is not None),
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
