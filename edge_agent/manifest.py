"""The model package manifest: what a packaged model is, for the registry and the daemon.

A *model package* is a directory that `edge-agent convert package` writes::

    digits-1.2.0/
      manifest.json        this schema (the registry signs it as a TUF target)
      digits_int8.tflite   the model
      profile.json         the drift reference profile (optional)
      evaluation.json      the full evaluation report (optional)

Every file the manifest points to is listed with its size and sha256, so a copied package can be
checked (:func:`verify_package`) before anything loads it. The schema is versioned
(``schema_version``) and forbids unknown keys: a manifest from a newer edge-agent is refused with
a message that says to upgrade, not half-understood.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_agent._fs import write_atomically
from edge_agent.errors import ModelError
from edge_agent.names import DeviceClass, ModelName, Version

MANIFEST_FILENAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
"""Bump when a change would make an older agent misread a manifest."""

_DTYPES = (
    "float32",
    "float16",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "bool",
)

Layout = Literal["NHWC", "NCHW"]
ModelFormat = Literal["tflite", "onnx"]
QuantizationScheme = Literal["float32", "float16", "dynamic", "static", "full-integer"]
"""float32/float16: no integer kernels. dynamic: int8 weights, activations quantized at run time.
static: int8 weights and activations with float I/O (ONNX QDQ, TFLite with float I/O).
full-integer: static with integer I/O (TFLite int8/uint8 I/O; what the Edge TPU needs)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Strict):
    """A file inside the package, pinned by size and hash."""

    path: str = Field(description="Path relative to the package directory (POSIX separators).")
    bytes: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the content.")

    @field_validator("path")
    @classmethod
    def _inside_package(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if not value or pure.is_absolute() or ".." in pure.parts or "\\" in value:
            raise ValueError("must be a relative path inside the package (no '..', not absolute)")
        return value


class TensorQuantization(_Strict):
    """Affine quantization of an integer tensor: ``real = (stored - zero_point) * scale``."""

    scale: float = Field(gt=0)
    zero_point: int


class TensorInfo(_Strict):
    """One model input or output, as the device runtime sees it."""

    name: str
    shape: list[int] = Field(description="Dimensions; -1 where the size is set per call.")
    dtype: str = Field(description=f"numpy dtype name, one of {', '.join(_DTYPES)}.")
    layout: Layout | None = Field(default=None, description="For 4-D image tensors.")
    quantization: TensorQuantization | None = None

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in _DTYPES:
            raise ValueError(f"unknown dtype {value!r}; expected one of {', '.join(_DTYPES)}")
        return value

    @field_validator("shape")
    @classmethod
    def _dims(cls, value: list[int]) -> list[int]:
        if any(d < -1 for d in value):
            raise ValueError("dimensions are sizes >= 0, or -1 for dynamic")
        return value


class CalibrationInfo(_Strict):
    """How activation ranges were calibrated (static and full-integer schemes)."""

    method: str = Field(description="minmax, entropy, percentile, or the converter's own.")
    samples: int = Field(ge=0)
    source: str = Field(default="", description="Where the samples came from (a path name).")


class QuantizationInfo(_Strict):
    """How the model's numbers are stored."""

    scheme: QuantizationScheme
    weights: str = Field(description="dtype of the weights (float32, float16, int8, uint8).")
    activations: str = Field(description="dtype of activations (float32, int8, uint8, dynamic).")
    per_channel: bool | None = Field(default=None, description="Per-channel weight scales.")
    calibration: CalibrationInfo | None = None
    excluded: list[str] = Field(
        default_factory=list, description="Nodes / op types kept in float on purpose."
    )
    tool: str = Field(default="", description="What quantized it, with its version.")


class Preprocessing(_Strict):
    """What the pipeline does to raw data before the model sees it."""

    kind: Literal["image", "tensor"] = "tensor"
    layout: Layout | None = None
    color: Literal["rgb", "bgr", "gray"] | None = None
    resize: list[int] | None = Field(default=None, description="[height, width] to resize to.")
    scale: float = Field(
        default=1.0,
        description="Raw values are multiplied by this first "
        "(1/255 turns 8-bit pixels into [0, 1]).",
    )
    mean: list[float] | None = Field(default=None, description="Subtracted per channel.")
    std: list[float] | None = Field(default=None, description="Divided per channel.")

    @field_validator("resize")
    @classmethod
    def _two_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or min(value) <= 0):
            raise ValueError("resize is [height, width], both positive")
        return value


class GateResult(_Strict):
    """One evaluation gate: a measured value against its threshold."""

    name: str
    passed: bool
    value: float | None = Field(description="Measured; None when it could not be measured.")
    threshold: float
    detail: str = ""


class EvaluationSummary(_Strict):
    """The evaluation of this model against its reference, as far as the fleet needs to know."""

    reference: str = Field(description="File name of the reference model.")
    reference_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    samples: int = Field(ge=0)
    top1_agreement: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    size_ratio: float
    latency_p50_ms: float
    latency_p95_ms: float
    reference_latency_p50_ms: float
    measured_on: str = Field(default="", description="Machine and runtime that measured latency.")
    gates: list[GateResult]
    passed: bool
    forced: bool = Field(default=False, description="Packaged with --force although gates failed.")
    report: FileRef | None = Field(default=None, description="The full evaluation report.")


class ModelManifest(_Strict):
    """The manifest of one model package (``manifest.json``)."""

    schema_version: Literal[1] = 1
    name: ModelName = Field(description="Model name: lowercase, digits, '.', '_', '-'.")
    version: Version = Field(description="MAJOR[.MINOR[.PATCH]][-pre][+build].")
    format: ModelFormat
    model: FileRef
    quantization: QuantizationInfo
    inputs: list[TensorInfo] = Field(min_length=1)
    outputs: list[TensorInfo] = Field(min_length=1)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    labels: list[str] | None = Field(default=None, description="Class names, by output index.")
    profile: FileRef | None = Field(default=None, description="Drift reference profile.")
    evaluation: EvaluationSummary | None = None
    target_devices: list[DeviceClass] = Field(
        default_factory=list,
        description="Device classes (device_configs/*.yaml) it is meant "
        "for; empty: any device whose runtime can load the format.",
    )
    target_delegates: list[str] = Field(
        default_factory=list,
        description="Delegates / execution providers the variant is built for (e.g. `edgetpu` "
        "for an Edge TPU-compiled model, `tensorrt`); a device picks it only when its device "
        "config lists one of them. Empty: runs on the CPU anywhere.",
    )
    min_agent_version: Version
    description: str = ""
    tools: dict[str, str] = Field(
        default_factory=dict, description="Versions of what built the package."
    )

    def files(self) -> list[FileRef]:
        """Every file the manifest pins (the model first)."""
        refs = [self.model, self.profile]
        if self.evaluation is not None:
            refs.append(self.evaluation.report)
        return [ref for ref in refs if ref is not None]


def version_key(version: str) -> tuple[int, ...]:
    """Numeric ordering key of MAJOR[.MINOR[.PATCH]] (pre-release / build suffix ignored)."""
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    parts = [int(p) for p in core.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def file_ref(path: Path, package_dir: Path) -> FileRef:
    """Hash ``path`` (a file inside ``package_dir``) into a FileRef."""
    relative = path.resolve().relative_to(package_dir.resolve()).as_posix()
    return FileRef(path=relative, bytes=path.stat().st_size, sha256=sha256_file(path))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate a manifest; ModelError names the file, the key and what is wrong."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{path}: no manifest here (a model package has {MANIFEST_FILENAME})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the manifest: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg} (truncated or hand-edited?)"
        ) from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: a manifest is a JSON object, got {type(raw).__name__}")
    found = raw.get("schema_version")
    if isinstance(found, int) and found > MANIFEST_SCHEMA_VERSION:
        raise ModelError(
            f"{path}: manifest schema_version {found} is newer than this "
            f"edge-agent understands ({MANIFEST_SCHEMA_VERSION}); upgrade edge-agent"
        )
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(f"{path}: invalid manifest:\n{describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``key.path: message (got value)``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        got = "" if error["type"] == "missing" else f" (got {error.get('input')!r:.60})"
        lines.append(f"  {where}: {error['msg']}{got}")
    return "\n".join(lines)


def save_manifest(manifest: ModelManifest, path: Path) -> None:
    """Write the manifest as indented JSON, atomically."""
    text = manifest.model_dump_json(indent=2, exclude_none=True) + "\n"
    write_atomically(path, text.encode("utf-8"))


def verify_package(package_dir: Path) -> ModelManifest:
    """Load ``package_dir``'s manifest and check every pinned file's size and hash.

    Raises ModelError naming the first file that is missing, truncated or altered.
    """
    manifest = load_manifest(package_dir / MANIFEST_FILENAME)
    for ref in manifest.files():
        target = package_dir / ref.path
        if not target.is_file():
            raise ModelError(f"{package_dir}: package file {ref.path} is missing")
        size = target.stat().st_size
        if size != ref.bytes:
            raise ModelError(
                f"{target}: {size} bytes, the manifest says {ref.bytes} (truncated or replaced)"
            )
        if sha256_file(target) != ref.sha256:
            raise ModelError(f"{target}: sha256 differs from the manifest (altered)")
    return manifest
