"""A model package: the model, its manifest, profile and evaluation, ready for the registry.

The package is assembled in a temporary directory beside the output and renamed into place, so
an interrupted run leaves no half package. It refuses a model whose evaluation failed its gates
(unless forced, and then the manifest says so), an evaluation made of another file, and a
quantized model that was never evaluated (unless forced).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydantic import ValidationError

from edge_agent import __version__
from edge_agent.config import RuntimeSettings
from edge_agent.convert.inspect_model import default_preprocessing, quantization_of, tensor_info
from edge_agent.convert.report import load_report
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import (
    MANIFEST_FILENAME,
    ModelFormat,
    ModelManifest,
    Preprocessing,
    describe_validation_error,
    file_ref,
    save_manifest,
    sha256_file,
    verify_package,
)
from edge_agent.runtime import load_model

PROFILE_FILENAME = "profile.json"
EVALUATION_FILENAME = "evaluation.json"


@dataclass(frozen=True)
class PackageRequest:
    """Everything `convert package` was asked to put together."""

    model: Path
    name: str
    version: str
    output: Path
    profile: Path | None = None
    evaluation: Path | None = None
    class_names: Path | None = None
    preprocessing: Preprocessing | None = None
    preprocessing_overrides: tuple[tuple[str, object], ...] = ()
    """(field, value) pairs applied over the default preprocessing (scale, mean, std)."""
    target_devices: tuple[str, ...] = ()
    target_delegates: tuple[str, ...] = ()
    min_agent_version: str = __version__
    description: str = ""
    force: bool = False


def build_package(request: PackageRequest) -> ModelManifest:
    """Write the package directory ``request.output``; returns its (verified) manifest.

    Raises ModelError when the gates failed (and not forced), the evaluation is of another
    file, or the model does not load; InputError for bad names, versions, label files, or an
    output directory that is already there.
    """
    if request.output.exists() and any(request.output.iterdir()):
        raise InputError(
            f"{request.output}: already exists and is not empty; choose a new "
            "directory (packages are immutable once published)"
        )
    backend = load_model(request.model, RuntimeSettings(warmup_runs=0))
    try:
        inputs = [tensor_info(spec) for spec in backend.inputs]
        outputs = [tensor_info(spec) for spec in backend.outputs]
        quantization = quantization_of(backend)
        preprocessing = request.preprocessing or default_preprocessing(backend.inputs[0])
        if request.preprocessing_overrides:
            preprocessing = Preprocessing.model_validate(
                {**preprocessing.model_dump(), **dict(request.preprocessing_overrides)}
            )
        model_format = cast(ModelFormat, backend.format)
    finally:
        backend.close()
    labels = _class_names(request.class_names, outputs[0].shape)
    _check_evaluated(request, quantization.scheme)

    request.output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{request.output.name}.", dir=request.output.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700
        model_copy = staging / request.model.name
        shutil.copyfile(request.model, model_copy)
        profile_ref = None
        if request.profile is not None:
            _check_profile(request.profile)
            shutil.copyfile(request.profile, staging / PROFILE_FILENAME)
            profile_ref = file_ref(staging / PROFILE_FILENAME, staging)
        evaluation = None
        if request.evaluation is not None:
            report = load_report(request.evaluation)
            shutil.copyfile(request.evaluation, staging / EVALUATION_FILENAME)
            evaluation = report.summary(
                file_ref(staging / EVALUATION_FILENAME, staging),
                forced=request.force and not report.passed,
            )
        try:
            manifest = ModelManifest(
                name=request.name,
                version=request.version,
                format=model_format,
                model=file_ref(model_copy, staging),
                quantization=quantization,
                inputs=inputs,
                outputs=outputs,
                preprocessing=preprocessing,
                labels=labels,
                profile=profile_ref,
                evaluation=evaluation,
                target_devices=list(request.target_devices),
                target_delegates=list(request.target_delegates),
                min_agent_version=request.min_agent_version,
                description=request.description,
                tools={"edge-agent": __version__},
            )
        except ValidationError as exc:
            raise InputError(
                f"cannot package {request.model}:\n{describe_validation_error(exc)}"
            ) from None
        save_manifest(manifest, staging / MANIFEST_FILENAME)
        if request.output.exists():
            request.output.rmdir()  # empty (checked above)
        os.replace(staging, request.output)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return verify_package(request.output)


def _check_evaluated(request: PackageRequest, scheme: str) -> None:
    if request.evaluation is None:
        if scheme != "float32" and not request.force:
            raise ModelError(
                f"{request.model}: a {scheme}-quantized model without an evaluation: run "
                "`edge-agent convert evaluate MODEL --reference FLOAT_MODEL --data DATA "
                "--output eval.json` and pass --eval eval.json (or --force to package it "
                "unverified)"
            )
        return
    report = load_report(request.evaluation)
    if report.candidate.sha256 != sha256_file(request.model):
        raise ModelError(
            f"{request.evaluation}: evaluates {report.candidate.path} "
            f"(sha256 {report.candidate.sha256[:12]}), not {request.model}: "
            "evaluate this very file"
        )
    if not report.passed and not request.force:
        failed = ", ".join(
            f"{g.name}={g.value if g.value is None else round(g.value, 4)} "
            f"(threshold {g.threshold})"
            for g in report.gates
            if not g.passed
        )
        raise ModelError(
            f"{request.model}: evaluation gates failed ({failed}); not packaging "
            "it. Fix the conversion, or pass --force (the manifest will say it was "
            "forced)"
        )


def _class_names(path: Path | None, first_output_shape: list[int]) -> list[str] | None:
    if path is None:
        return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise InputError(f"{path}: cannot read the class names: {exc}") from None
    names = [name for name in names if name]
    classes = first_output_shape[-1] if first_output_shape else -1
    if classes > 0 and len(names) != classes:
        raise InputError(f"{path}: {len(names)} class names for a model with {classes} classes")
    return names


def _check_profile(path: Path) -> None:
    from edge_agent.telemetry.profile import load_profile

    load_profile(path)  # ModelError naming the file when it is not a profile
