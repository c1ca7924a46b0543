"""Keras (``.keras`` / ``.h5``) or SavedModel -> TFLite with TensorFlow's TFLiteConverter.

Modes: ``float32``; ``float16`` (weights stored as float16); ``dynamic`` (dynamic-range: int8
weights, float activations); ``int8`` (full integer: int8 weights and activations, calibrated on
a representative data set, with int8, uint8 or float32 inputs/outputs). A Keras model is exported
through ``keras.export.ExportArchive`` with a fixed batch size first: Keras 3 variables are not
tf.Module-tracked, and a hand-made SavedModel would leave READ_VARIABLE ops that int8 calibration
rejects. The result is loaded with the device runtime before this returns.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edge_agent._fs import write_atomically
from edge_agent.config import RuntimeSettings
from edge_agent.convert.calibration import (
    DataSource,
    SampleSet,
    feeds_for,
    require_samples,
    sample_batches,
)
from edge_agent.convert.deps import require
from edge_agent.convert.options import TFLiteOptions
from edge_agent.convert.progress import steps
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import (
    CalibrationInfo,
    QuantizationInfo,
    QuantizationScheme,
)
from edge_agent.runtime import DYNAMIC, TensorSpec, load_model


@dataclass
class TFLiteResult:
    """What a conversion to TFLite produced (from Keras/SavedModel or from ONNX)."""

    output: Path
    output_bytes: int
    info: QuantizationInfo
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def convert_to_tflite(
    source: Path,
    output: Path,
    options: TFLiteOptions,
    samples: SampleSet | DataSource | None,
    console: Console | None = None,
) -> TFLiteResult:
    """Convert ``source`` (a .keras/.h5 file or a SavedModel directory) to ``output``.

    Raises InputError (no / too few / ill-fitting representative samples) and ModelError
    (unreadable model, ops TFLite cannot express, result does not load on LiteRT).
    """
    tf = require("tensorflow", "converting to TFLite")
    if options.mode == "int8" and samples is None:
        raise InputError(
            "full-integer int8 conversion calibrates on a representative data set: "
            "give --calibration DATA, or use --mode dynamic / float16"
        )
    with tempfile.TemporaryDirectory(prefix="edge-agent-tflite-") as tmp:
        saved_model = _as_saved_model(tf, source, Path(tmp) / "saved_model", options.batch_size)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(saved_model), signature_keys=["serving_default"]
        )
        specs = _signature_specs(tf, saved_model)
        calibration = _configure(tf, converter, options, samples, specs, console)
        with steps(f"converting to TFLite ({options.mode})", None, console):
            try:
                with warnings.catch_warnings():
                    # TF's calibrator uses its own (deprecated) tf.lite.Interpreter internally
                    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                    flatbuffer = converter.convert()
            except Exception as exc:
                raise ModelError(_conversion_error(source, exc)) from None
    write_atomically(output, bytes(flatbuffer))
    backend = load_model(output, RuntimeSettings())
    try:
        inputs = [spec.describe() for spec in backend.inputs]
        outputs = [spec.describe() for spec in backend.outputs]
    finally:
        backend.close()
    return TFLiteResult(
        output=output,
        output_bytes=output.stat().st_size,
        info=quantization_info(options, calibration, tf.__version__),
        inputs=inputs,
        outputs=outputs,
    )


def quantization_info(
    options: TFLiteOptions, calibration: CalibrationInfo | None, tf_version: str
) -> QuantizationInfo:
    """The manifest's description of a conversion with ``options``."""
    tool = f"tensorflow {tf_version} TFLiteConverter"
    if options.mode == "float32":
        return QuantizationInfo(
            scheme="float32", weights="float32", activations="float32", tool=tool
        )
    if options.mode == "float16":
        return QuantizationInfo(
            scheme="float16", weights="float16", activations="float32", tool=tool
        )
    if options.mode == "dynamic":
        return QuantizationInfo(
            scheme="dynamic", weights="int8", activations="dynamic", per_channel=True, tool=tool
        )
    scheme: QuantizationScheme = "static" if options.io_type == "float32" else "full-integer"
    return QuantizationInfo(
        scheme=scheme,
        weights="int8",
        activations="int8",
        per_channel=True,
        calibration=calibration,
        tool=tool,
    )


def _as_saved_model(tf: Any, source: Path, target: Path, batch_size: int) -> Path:
    if source.is_dir():
        if not (source / "saved_model.pb").is_file():
            raise ModelError(f"{source}: a directory but not a SavedModel (no saved_model.pb)")
        return source
    if source.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            f"{source}: give a Keras model (.keras, .h5) or a SavedModel directory "
            "(for ONNX models use `edge-agent convert onnx2tflite`)"
        )
    if not source.is_file():
        raise ModelError(f"{source}: no such model file")
    keras = require("keras", "loading Keras models")
    try:
        model = keras.models.load_model(str(source), compile=False)
    except Exception as exc:
        raise ModelError(f"{source}: Keras cannot load the model: {_first_line(exc)}") from None
    signature = [
        tf.TensorSpec(
            (batch_size, *tensor.shape[1:]), tensor.dtype, name=_input_name(tensor, index)
        )
        for index, tensor in enumerate(model.inputs)
    ]
    names = [spec.name for spec in signature]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(*args: Any) -> Any:
        return model(list(args) if len(args) > 1 else args[0], training=False)

    archive.add_endpoint("serving_default", serve, input_signature=signature)
    archive.write_out(str(target), verbose=False)
    if len(set(names)) != len(names):
        raise ModelError(f"{source}: input names are not unique: {names}")
    return target


def _input_name(tensor: Any, index: int) -> str:
    name = str(getattr(tensor, "name", "") or f"input_{index}").split(":")[0]
    return name.replace("/", "_") or f"input_{index}"


def _signature_specs(tf: Any, saved_model: Path) -> list[TensorSpec]:
    loaded = tf.saved_model.load(str(saved_model))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ModelError(f"{saved_model}: the SavedModel has no 'serving_default' signature")
    _, kwargs = signature.structured_input_signature
    return [
        TensorSpec(
            name,
            tuple(DYNAMIC if d is None else int(d) for d in spec.shape),
            np.dtype(spec.dtype.as_numpy_dtype),
        )
        for name, spec in sorted(kwargs.items())
    ]


def _configure(
    tf: Any,
    converter: Any,
    options: TFLiteOptions,
    data: SampleSet | DataSource | None,
    specs: list[TensorSpec],
    console: Console | None,
) -> CalibrationInfo | None:
    if options.allow_select_tf_ops:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
    if options.mode == "float32":
        return None
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if options.mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return None
    if options.mode == "dynamic":
        return None
    assert data is not None
    fixed = [TensorSpec(s.name, (1, *s.shape[1:]), s.dtype) for s in specs]
    samples = data.load(fixed) if isinstance(data, DataSource) else data
    feeds = feeds_for(samples, fixed)
    require_samples(samples, options.min_samples, "int8 calibration")

    def representative() -> Any:
        with steps(f"calibrating ({samples.count} samples)", samples.count, console) as advance:
            for batch in sample_batches(feeds):
                yield batch
                advance(1)

    converter.representative_dataset = representative
    if not options.allow_select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if options.io_type != "float32":
        io = tf.int8 if options.io_type == "int8" else tf.uint8
        converter.inference_input_type = io
        converter.inference_output_type = io
    return CalibrationInfo(method="minmax", samples=samples.count, source=Path(samples.source).name)


def _conversion_error(source: Path, exc: Exception) -> str:
    text = str(exc)
    unsupported = sorted(
        {
            line.strip().split(" ")[0].rstrip(":")
            for line in text.splitlines()
            if line.strip().startswith(("tf.", "'tf."))
        }
    )
    if "not supported" in text or unsupported:
        ops = f": {', '.join(unsupported)}" if unsupported else ""
        return (
            f"{source}: the model has ops TFLite cannot run as builtins{ops}. Replace them in "
            "the model, or pass --allow-select-tf-ops (the device then needs LiteRT with "
            f"the Flex delegate). Converter said: {_first_line(exc)}"
        )
    return f"{source}: TFLite conversion failed: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
